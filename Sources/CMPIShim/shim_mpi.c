#include "cmpi_shim.h"
#if __has_include(<mpi.h>)
#include <stdlib.h>
#include <string.h>

int cmpi_thread_single(void) { return MPI_THREAD_SINGLE; }
int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
int cmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
int cmpi_any_source(void) { return MPI_ANY_SOURCE; }
int cmpi_any_tag(void) { return MPI_ANY_TAG; }

int cmpi_tag_upper_bound(void) {
    int *value = NULL;
    int flag = 0;
    if (MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &flag) != MPI_SUCCESS || !flag || value == NULL) return 32767;
    return *value;
}

int cmpi_init_thread(int required, int *provided) { return MPI_Init_thread(NULL, NULL, required, provided); }
int cmpi_initialized(int *flag) { return MPI_Initialized(flag); }
int cmpi_finalized(int *flag) { return MPI_Finalized(flag); }
int cmpi_finalize(void) { return MPI_Finalize(); }
int cmpi_abort(int comm, int code) { return MPI_Abort(MPI_Comm_f2c(comm), code); }
int cmpi_errors_return(int comm) { return MPI_Comm_set_errhandler(MPI_Comm_f2c(comm), MPI_ERRORS_RETURN); }

void cmpi_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (capacity <= 0) return;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, text, (size_t)length);
    buffer[length] = 0;
}

void cmpi_library_version(char *buffer, int capacity) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    if (capacity <= 0) return;
    if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, text, (size_t)length);
    buffer[length] = 0;
}

void cmpi_processor_name(char *buffer, int capacity) {
    char text[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (capacity <= 0) return;
    if (MPI_Get_processor_name(text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, text, (size_t)length);
    buffer[length] = 0;
}

double cmpi_wtime(void) { return MPI_Wtime(); }

int cmpi_comm_world(void) { return (int)MPI_Comm_c2f(MPI_COMM_WORLD); }
int cmpi_comm_rank(int comm, int *rank) { return MPI_Comm_rank(MPI_Comm_f2c(comm), rank); }
int cmpi_comm_size(int comm, int *size) { return MPI_Comm_size(MPI_Comm_f2c(comm), size); }
int cmpi_comm_dup(int comm, int *out) {
    MPI_Comm copy = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(MPI_Comm_f2c(comm), &copy);
    if (rc == MPI_SUCCESS) *out = (int)MPI_Comm_c2f(copy);
    return rc;
}

void *cmpi_request_new(void) {
    MPI_Request *request = malloc(sizeof(MPI_Request));
    if (request) *request = MPI_REQUEST_NULL;
    return request;
}
void *cmpi_message_new(void) {
    MPI_Message *message = malloc(sizeof(MPI_Message));
    if (message) *message = MPI_MESSAGE_NULL;
    return message;
}
void cmpi_storage_free(void *storage) { free(storage); }

int cmpi_isend_bytes(const void *buffer, int count, int destination, int tag, int comm, void *request) {
    return MPI_Isend(buffer, count, MPI_BYTE, destination, tag, MPI_Comm_f2c(comm), (MPI_Request *)request);
}

int cmpi_test(void *request, int *done) { return MPI_Test((MPI_Request *)request, done, MPI_STATUS_IGNORE); }
int cmpi_cancel(void *request) { return MPI_Cancel((MPI_Request *)request); }

int cmpi_improbe_bytes(int source, int tag, int comm, int *found, void *message, int *source_out, int *tag_out, int *count) {
    MPI_Status status;
    int rc = MPI_Improbe(source, tag, MPI_Comm_f2c(comm), found, (MPI_Message *)message, &status);
    if (rc != MPI_SUCCESS || !*found) return rc;
    *source_out = status.MPI_SOURCE;
    *tag_out = status.MPI_TAG;
    return MPI_Get_count(&status, MPI_BYTE, count);
}

int cmpi_mrecv_bytes(void *buffer, int count, void *message) {
    return MPI_Mrecv(buffer, count, MPI_BYTE, (MPI_Message *)message, MPI_STATUS_IGNORE);
}
#endif
