// The MPI header of whichever implementation pkg-config's mpi-c names. No `link` line in the module
// map: the .pc file's -lmpi (Open MPI) or -lmpich links it.
#include <mpi.h>
