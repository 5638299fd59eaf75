"""Python peer of SyncBenchmark: threading.Lock, multiprocessing.Lock and CPU scaling over threads.

Prints one JSON object. Run by SyncBenchmark (same run), or by hand:
    python3 sync_peer.py --pairs 2000000 --cpu 20000000 --repeats 5
"""
import argparse
import json
import multiprocessing as mp
import statistics
import threading
import time


def uncontended(lock, n):
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    return time.perf_counter() - t


def hammer(lock, counter, n):
    for _ in range(n):
        with lock:
            counter[0] += 1


def contended_threads(n):
    lock = threading.Lock()
    counter = [0]
    threads = [threading.Thread(target=hammer, args=(lock, counter, n // 2)) for _ in range(2)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    assert counter[0] == 2 * (n // 2)
    return elapsed


def process_hammer(lock, value, barrier, n, out):
    barrier.wait()
    start = time.monotonic()
    for _ in range(n):
        with lock:
            value.value += 1
    out.put((start, time.monotonic()))


def contended_processes(n):
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    value = ctx.Value("q", 0, lock=False)
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=process_hammer, args=(lock, value, barrier, n // 2, out)) for _ in range(2)]
    for p in procs:
        p.start()
    spans = [out.get() for _ in procs]
    for p in procs:
        p.join()
    assert value.value == 2 * (n // 2), value.value
    # From the first start to the last end, as the Swift side measures.
    return max(end for _, end in spans) - min(start for start, _ in spans)


def cpu_job(n):
    # The Swift job's xorshift-multiply walk, step for step.
    x = 0x9E3779B97F4A7C15
    for _ in range(n):
        x ^= x >> 29
        x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 32
    return x


def cpu_threads(total, count):
    threads = [threading.Thread(target=cpu_job, args=(total // count,)) for _ in range(count)]
    t, c = time.perf_counter(), time.process_time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return wall, (time.process_time() - c) / wall


def median(f, repeats):
    return statistics.median(f() for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--cpu", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args()
    n, r = a.pairs, a.repeats
    result = {
        "threading.Lock uncontended": n / median(lambda: uncontended(threading.Lock(), n), r),
        "multiprocessing.Lock uncontended": n / median(lambda: uncontended(mp.Lock(), n), r),
        "threading.Lock 2 threads": n / median(lambda: contended_threads(n), r),
        "multiprocessing.Lock 2 processes": n / median(lambda: contended_processes(n), r),
    }
    for count in (1, 2):
        runs = sorted((cpu_threads(a.cpu, count) for _ in range(r)), key=lambda run: run[0])
        wall, cores = runs[len(runs) // 2]
        result["cpu %d thread%s seconds" % (count, "" if count == 1 else "s")] = wall
        result["cpu %d thread%s cores" % (count, "" if count == 1 else "s")] = cores
    print(json.dumps(result))


if __name__ == "__main__":
    main()
