"""Python's twin of `examples thread-cores`: the same two CPU-bound jobs on one thread, then on two.

    python3 Benchmarks/peers/thread_cores.py [MILLIONS]

With CPython's global interpreter lock the two threads take turns, so the speed-up stays near 1.0x
and the process keeps about one core busy.
"""
import sys
import threading
import time

MASK = (1 << 64) - 1


def spin(rounds, seed):
    x = seed
    for _ in range(rounds):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        x ^= x >> 29
    return x


def timed(body):
    wall, cpu = time.perf_counter(), time.process_time()
    body()
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    steps = int(float(sys.argv[1]) * 1_000_000) if len(sys.argv) > 1 else 2_000_000
    results = {}

    def serial():
        results["serial"] = [spin(steps, 1), spin(steps, 2)]

    def parallel():
        out = [None, None]
        threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, spin(steps, i + 1))) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results["parallel"] = out

    s_wall, s_cpu = timed(serial)
    print(f"1 thread : 2 jobs in {s_wall:.2f} s (CPU time {s_cpu:.2f} s: {s_cpu / s_wall:.2f} cores busy)")
    p_wall, p_cpu = timed(parallel)
    print(f"2 threads: 2 jobs in {p_wall:.2f} s (CPU time {p_cpu:.2f} s: {p_cpu / p_wall:.2f} cores busy)")
    print(f"same results: {results['serial'] == results['parallel']}")
    print(f"speed-up: {s_wall / p_wall:.2f}x")


if __name__ == "__main__":
    main()
