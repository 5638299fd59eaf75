# The Python side of PoolBenchmark: multiprocessing.Pool and ProcessPoolExecutor, 2 workers,
# trivial int -> int tasks. Prints "name value" lines (tasks/s, or microseconds).
import sys, time, multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

def square(x):
    return x * x

def best(f, repeats):
    return sorted(f() for _ in range(repeats))[repeats // 2]

def main():
    n = int(sys.argv[1]); repeats = int(sys.argv[2])
    ctx = mp.get_context("fork")
    xs = list(range(n))
    with ctx.Pool(2) as pool:
        pool.map(square, range(100))  # warm
        def timed(**kw):
            def run():
                t = time.perf_counter(); pool.map(square, xs, **kw); return time.perf_counter() - t
            return run
        print("mp_pool_chunk1_tps", n / best(timed(chunksize=1), repeats))
        print("mp_pool_auto_tps", n / best(timed(), repeats))
        def latency():
            k = 2000
            t = time.perf_counter()
            for i in range(k): pool.apply_async(square, (i,)).get()
            return (time.perf_counter() - t) / k * 1e6
        print("mp_pool_latency_us", best(latency, repeats))
    # maxtasksperchild=25 against none, default chunking (Python forces chunksize... it keeps its own)
    m = n // 10
    def recycled(per_child):
        def run():
            with ctx.Pool(2, maxtasksperchild=per_child) as p:
                p.map(square, range(100))
                t = time.perf_counter(); p.map(square, range(m), chunksize=1); return time.perf_counter() - t
        return run
    print("mp_pool_recycle25_tps", m / best(recycled(25), max(1, repeats // 2)))
    print("mp_pool_norecycle_tps", m / best(recycled(None), max(1, repeats // 2)))
    def first_result():
        t = time.perf_counter()
        with ctx.Pool(8) as p:
            p.apply(square, (3,))
            dt = time.perf_counter() - t
        return dt * 1e6
    print("mp_pool8_first_result_us", best(first_result, repeats))
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        list(ex.map(square, range(100)))
        m2 = n // 10
        def run():
            t = time.perf_counter(); list(ex.map(square, range(m2), chunksize=1)); return time.perf_counter() - t
        print("ppe_chunk1_tps", m2 / best(run, repeats))
        def lat():
            k = 1000
            t = time.perf_counter()
            for i in range(k): ex.submit(square, i).result()
            return (time.perf_counter() - t) / k * 1e6
        print("ppe_latency_us", best(lat, repeats))

if __name__ == "__main__":
    main()
