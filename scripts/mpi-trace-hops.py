#!/usr/bin/env python3
# Per-hop medians of one MULTIPROCESSING_MPI_TRACE=2 run (docs/benchmarks.md, "one task in flight, hop by hop").
#   scripts/mpi-trace-hops.py trace.txt      (the stderr of mpirun -x MULTIPROCESSING_MPI_TRACE ... mpi-map latency N)
# Lines are "mpi-trace STEP CHUNK NANOSECONDS"; all ranks on one host share CLOCK_MONOTONIC.
import sys, collections, statistics
# lines: mpi-trace STEP CHUNK NS ; steps across ranks share CLOCK_MONOTONIC (same host)
t = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 4 and p[0] == "mpi-trace":
        t[int(p[2])].setdefault(p[1], int(p[3]))
order = ["0-submitted","1-sent","2-arrived","3-started","4-done","5-replied","6-received","7-delivered"]
hops = collections.defaultdict(list)
for c, s in t.items():
    for a, b in zip(order, order[1:]):
        if a in s and b in s: hops[a+" -> "+b].append((s[b]-s[a])/1000)
    if order[0] in s and order[-1] in s: hops["total"].append((s[order[-1]]-s[order[0]])/1000)
for k in [a+" -> "+b for a,b in zip(order,order[1:])]+["total"]:
    v = hops.get(k, [])
    if v: print(f"{k:28s} n={len(v):4d} median {statistics.median(v):8.1f} us  p90 {sorted(v)[int(len(v)*.9)]:8.1f}")
