"""Python's multiprocessing.Manager measured the way ManagerBenchmark measures ours.

Prints one "name value" line per figure: set_us, get_us (median microseconds per call),
throughput_N (calls per second with N client processes, N in 1 4 16) and connect_us (connect and
authenticate a new client to a running manager).

    python3 manager_peer.py [calls] [throughput_calls]
"""
import multiprocessing as mp
import statistics
import sys
import time
from multiprocessing.managers import BaseManager, SyncManager


def batches(fn, calls, batch=200):
    samples = []
    for start in range(0, calls, batch):
        t0 = time.perf_counter_ns()
        for i in range(start, start + batch):
            fn(i)
        samples.append((time.perf_counter_ns() - t0) / batch / 1000)
    return statistics.median(samples)


def client(d, barrier, calls, out):
    barrier.wait()
    t0 = time.monotonic_ns()
    for i in range(calls):
        d["k"] = i
    out.put((t0, time.monotonic_ns()))


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    tcalls = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    manager = mp.Manager()
    d = manager.dict()
    for i in range(1000):
        d["k"] = i
    print("set_us", batches(lambda i: d.__setitem__("k", i), calls))
    print("get_us", batches(lambda i: d.__getitem__("k"), calls))
    for n in (1, 4, 16):
        barrier = manager.Barrier(n + 1)
        out = manager.Queue()
        procs = [mp.Process(target=client, args=(d, barrier, tcalls, out)) for _ in range(n)]
        for p in procs:
            p.start()
        barrier.wait()
        spans = [out.get() for _ in range(n)]
        for p in procs:
            p.join()
        start = min(s for s, _ in spans)
        end = max(e for _, e in spans)
        print(f"throughput_{n}", n * tcalls / ((end - start) / 1e9))
    address = manager.address
    key = mp.current_process().authkey
    samples = []
    for _ in range(200):
        t0 = time.perf_counter_ns()
        m = SyncManager(address=address, authkey=key)
        m.connect()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    print("connect_us", statistics.median(samples))
    manager.shutdown()


if __name__ == "__main__":
    main()
