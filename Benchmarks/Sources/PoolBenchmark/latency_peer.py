# One task in flight through Python's Pool and ProcessPoolExecutor, 200 round trips after 200 warm-up:
# the twin of `PoolBenchmark 0 1 latency`, run alternately with it.
import time, multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

def square(x):
    return x * x

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        for i in range(200): pool.apply_async(square, (i,)).get()
        t = time.perf_counter()
        for i in range(200): pool.apply_async(square, (i,)).get()
        print("mp_pool_latency_us", (time.perf_counter() - t) / 200 * 1e6)
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        for i in range(200): ex.submit(square, i).result()
        t = time.perf_counter()
        for i in range(200): ex.submit(square, i).result()
        print("ppe_latency_us", (time.perf_counter() - t) / 200 * 1e6)
