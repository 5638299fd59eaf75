"""Python's peer for StartBenchmark: multiprocessing.Process start+join of a no-op, per start method.
Prints one line per method: "<method> <median milliseconds>"."""
import multiprocessing as mp
import sys
import time


def noop():
    pass


def run(method, rounds):
    ctx = mp.get_context(method)
    for _ in range(3):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2]


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    for method in ("fork", "forkserver", "spawn"):
        # spawn costs ~90 ms a start: a quarter of the rounds keeps the run short.
        print(method, run(method, rounds if method != "spawn" else max(10, rounds // 4)), flush=True)
