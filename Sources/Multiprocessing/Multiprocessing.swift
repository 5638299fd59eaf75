// Multiprocessing: Python's `multiprocessing` and `threading`, for Swift on Linux.
