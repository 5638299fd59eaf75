#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H
// The few MPI handles Swift cannot use directly: MPI_COMM_WORLD, MPI_BYTE, MPI_ANY_SOURCE and the
// rest are macros over addresses of globals in Open MPI and integer constants in MPICH, and
// MPI_Comm, MPI_Request and MPI_Message are pointers in one and ints in the other. Swift keeps those
// types opaque (it names them only as MPI_Comm, ...), and calls these functions, which return MPI's
// error code (MPI_SUCCESS is 0 in both).
//
// Built only with the MPI trait: without it no target depends on CMPI, so <mpi.h> is not on the
// include path and this header declares nothing.
#if __has_include(<mpi.h>)
#include <mpi.h>
#include <stddef.h>

int cmpi_thread_single(void);
int cmpi_thread_funneled(void);
int cmpi_thread_serialized(void);
int cmpi_thread_multiple(void);
int cmpi_any_source(void);
int cmpi_any_tag(void);
int cmpi_tag_upper_bound(void);

int cmpi_init_thread(int required, int *provided);
int cmpi_initialized(int *flag);
int cmpi_finalized(int *flag);
int cmpi_finalize(void);
int cmpi_abort(int comm, int code);
/// Errors return to the caller (MPI_ERRORS_RETURN) instead of aborting the job.
int cmpi_errors_return(int comm);
void cmpi_error_string(int code, char *buffer, int capacity);
void cmpi_library_version(char *buffer, int capacity);
void cmpi_processor_name(char *buffer, int capacity);
double cmpi_wtime(void);

/// Communicators as Fortran handles.
int cmpi_comm_world(void);
int cmpi_comm_rank(int comm, int *rank);
int cmpi_comm_size(int comm, int *size);
int cmpi_comm_dup(int comm, int *out);

/// Storage for one MPI_Request (MPI_REQUEST_NULL) or MPI_Message; free it with cmpi_storage_free.
void *cmpi_request_new(void);
void *cmpi_message_new(void);
void cmpi_storage_free(void *storage);
/// MPI_Isend of `count` bytes (MPI_BYTE); the request goes into `request` storage.
int cmpi_isend_bytes(const void *buffer, int count, int destination, int tag, int comm, void *request);
/// MPI_Test: *done is 1 once the request completed (it is then MPI_REQUEST_NULL again).
int cmpi_test(void *request, int *done);
int cmpi_cancel(void *request);

/// MPI_Improbe: *found is 1 when a message matched; then `message` storage holds it, and *source,
/// *tag and *count (in bytes) describe it.
int cmpi_improbe_bytes(int source, int tag, int comm, int *found, void *message, int *source_out, int *tag_out, int *count);
/// MPI_Mrecv of the matched message in `message` storage into `buffer` (`count` bytes).
int cmpi_mrecv_bytes(void *buffer, int count, void *message);
#endif
#endif
