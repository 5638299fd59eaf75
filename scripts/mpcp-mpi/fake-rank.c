// A rank that speaks mpcp's MPI protocol wrongly, for scripts/mpcp-mpi-tests.sh: mpcp must answer
// with a clear error, never a crash. MPIMessenger sends tag T as MPI tag 2T (the last part of a
// message); mpcp's tags are setup 1, ready 2, item 3, result 4, cancel 5, stop 6, bye 7, fatal 8.
//
//   fake-rank garbage-ready    as rank 1: answers the setup with bytes that are no MPICopyReady
//   fake-rank unexpected-tag   as rank 1: answers the setup with a message of tag 99
//   fake-rank garbage-setup    as rank 0: sends rank 1 a setup that is not one, prints what rank 1
//                              answers (its fatal message), then stops it
//   fake-rank garbage-work     as rank 1: answers the setup with a real ready, then sends rank 0
//                              a `work` message (tag 10) that is no list of work items
//   fake-rank cancel-drained   as rank 1: a real ready, then `cancel` (5) and `drained` (20) at
//                              once, as a rank that a signal reached with nothing in hand; on
//                              `cleanup` (21) it answers with a `final` (22) that is not one
//
// The distributed walk's tags: steal 9, work 10, noWork 11, hardLink 12, chunkDone 13, token 14,
// progress 15, walkDone 16, depth 17, level 18, levelDone 19, drained 20, cleanup 21, final 22.
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
        // MPICopyReady(workers: 1, host: "fake", problem: nil) in the wire codec (the test
        // MPIMessageCheckTests.theFakeRanksReadyIsAReady checks these bytes).
        static const char ready[] = "\x15\x07workers\x02\x02\x04host\x06\x04" "fake";
        if (strcmp(mode, "garbage-ready") == 0) send(0, 2, "\x07\x07\x07 not a ready message", 24);
        else if (strcmp(mode, "garbage-work") == 0) {
            send(0, 2, ready, sizeof ready - 1);
            send(0, 10, "\x01\xff\xfe no work items", 17);
        } else if (strcmp(mode, "cancel-drained") == 0) {
            send(0, 2, ready, sizeof ready - 1);
            send(0, 5, "", 0);
            send(0, 20, "", 0);
            while ((tag = receive(&source, buffer, sizeof buffer)) != 21 && tag != 6) {}
            if (tag == 21) {
                printf("fake rank 1 got cleanup\n");
                fflush(stdout);
                send(0, 22, "\x03 not a final", 14);
            }
        }
        else send(0, 99, "?", 1);
        while (tag != 6 && (tag = receive(&source, buffer, sizeof buffer)) != 6) {}
        send(0, 7, "", 0);
    }
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
