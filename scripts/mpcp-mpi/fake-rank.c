// A rank that speaks mpcp's MPI protocol wrongly, for scripts/mpcp-mpi-tests.sh: mpcp must answer
// with a clear error, never a crash. MPIMessenger sends tag T as MPI tag 2T (the last part of a
// message); mpcp's tags are setup 1, ready 2, item 3, result 4, cancel 5, stop 6, bye 7, fatal 8.
//
//   fake-rank garbage-ready    as rank 1: answers the setup with bytes that are no MPICopyReady
//   fake-rank unexpected-tag   as rank 1: answers the setup with a message of tag 99
//   fake-rank garbage-setup    as rank 0: sends rank 1 a setup that is not one, prints what rank 1
//                              answers (its fatal message), then stops it
//
// Every mode ends the protocol properly (stop, bye), so that the job ends on its own.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static MPI_Comm comm;

static int receive(int *source, char *buffer, int capacity) {
    MPI_Status status;
    MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &status);
    int count;
    MPI_Get_count(&status, MPI_BYTE, &count);
    char *bytes = malloc(count > 0 ? count : 1);
    MPI_Recv(bytes, count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, comm, MPI_STATUS_IGNORE);
    int n = count < capacity - 1 ? count : capacity - 1;
    memcpy(buffer, bytes, n);
    buffer[n] = 0;
    free(bytes);
    *source = status.MPI_SOURCE;
    return status.MPI_TAG / 2;
}

static void send(int to, int tag, const char *bytes, int count) { MPI_Send(bytes, count, MPI_BYTE, to, 2 * tag, comm); }

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    const char *mode = argc > 1 ? argv[1] : "";
    char buffer[65536];
    int source, tag;
    if (strcmp(mode, "garbage-setup") == 0) {
        send(1, 1, "\xff\xfe garbage", 10);
        tag = receive(&source, buffer, sizeof buffer);
        printf("fake rank 0 got tag %d from rank %d: %s\n", tag, source, buffer);
        send(1, 6, "", 0);
        while ((tag = receive(&source, buffer, sizeof buffer)) != 7) {}
    } else {
        while ((tag = receive(&source, buffer, sizeof buffer)) != 1) {}
        if (strcmp(mode, "garbage-ready") == 0) send(0, 2, "\x07\x07\x07 not a ready message", 24);
        else send(0, 99, "?", 1);
        while ((tag = receive(&source, buffer, sizeof buffer)) != 6) {}
        send(0, 7, "", 0);
    }
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
