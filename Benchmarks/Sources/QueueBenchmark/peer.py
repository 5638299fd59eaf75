"""Python's side of QueueBenchmark: the same measurements with multiprocessing.

Usage: peer.py queue SIZE COUNT [MAXSIZE] -> messages/s, process to process, through multiprocessing.Queue
       peer.py rtt SIZE ITERATIONS   -> median round trip (ns) of send_bytes/recv_bytes over Pipe()
       peer.py rtt-object ITERATIONS -> median round trip (ns) of send/recv of a small int over Pipe()
Prints one number on stdout.
"""
import multiprocessing as mp
import sys
import time


def produce(q, size, count):
    item = b"x" * size
    for _ in range(count):
        q.put(item)


def queue_rate(size, count, maxsize=0):
    q = mp.Queue(maxsize)
    p = mp.Process(target=produce, args=(q, size, count))
    p.start()
    q.get()  # the first item: the clock starts once both sides run
    t0 = time.perf_counter()
    for _ in range(count - 1):
        q.get()
    t1 = time.perf_counter()
    p.join()
    return (count - 1) / (t1 - t0)


def echo_bytes(conn, other):
    other.close()  # with fork the child inherits the parent's end too; keep only its own
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def echo_object(conn, other):
    other.close()
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass


def rtt(size, iterations, objects):
    a, b = mp.Pipe()
    p = mp.Process(target=echo_object if objects else echo_bytes, args=(b, a))
    p.start()
    b.close()
    message = b"x" * size
    samples = []
    clock = time.perf_counter_ns
    for i in range(iterations + 1000):
        t0 = clock()
        if objects:
            a.send(i)
            a.recv()
        else:
            a.send_bytes(message)
            a.recv_bytes()
        if i >= 1000:  # warm-up
            samples.append(clock() - t0)
    a.close()
    p.join()
    samples.sort()
    return samples[len(samples) // 2]


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "queue":
        print(queue_rate(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0))
    elif mode == "rtt":
        print(rtt(int(sys.argv[2]), int(sys.argv[3]), False))
    elif mode == "rtt-object":
        print(rtt(8, int(sys.argv[2]), True))
    else:
        sys.exit("unknown mode " + mode)
