"""The peer of MPIPool (issue 16): mpi4py.futures on the same MPI, in the same run.

    mpirun --oversubscribe -n 3 python3 -m mpi4py.futures Benchmarks/peers/mpi4py_futures.py [N]

Rank 0 runs this file with an MPIPoolExecutor over the other ranks (1 + 2 ranks). It prints the
throughput of N trivial tasks at chunksize 1 and at an automatic chunksize (mpi4py 4.x has none:
this uses multiprocessing's rule, ceil(N / (4 * workers))), and the time of one submit().result().
"""
import math
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def mix(x):
    return (x * 2654435761 + 17) % 1000003


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    with MPIPoolExecutor() as executor:
        workers = executor.num_workers
        list(executor.map(mix, range(100)))  # start the workers
        for label, chunksize in (("chunksize 1", 1), ("auto chunksize", max(1, math.ceil(count / (4 * workers))))):
            began = time.perf_counter()
            total = sum(executor.map(mix, range(count), chunksize=chunksize))
            seconds = time.perf_counter() - began
            print(f"mpi4py.futures {label} ({chunksize}): {count} tasks in {seconds:.3f} s, {count / seconds:.0f} tasks/s (sum {total})")
        rounds = 200
        began = time.perf_counter()
        for value in range(rounds):
            executor.submit(mix, value).result()
        seconds = time.perf_counter() - began
        print(f"mpi4py.futures submit().result(): {seconds / rounds * 1e6:.0f} µs each")


if __name__ == "__main__":
    main()
