#!/usr/bin/env bash
# MPIPool beside mpi4py.futures in one run (issue 16): 1 + 2 ranks on this host, 100,000 trivial
# tasks, Open MPI. Needs `pip install mpi4py` (4.x, which binds Debian's Open MPI at run time).
#   scripts/mpi-bench.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
count=${1:-100000}
swift build -c release --traits MPI --scratch-path .build-mpi --product mpi-map 2>&1 | grep -E "error|warning:|Build of"
bin=$PWD/.build-mpi/release/mpi-map
launch=(mpirun --oversubscribe --bind-to none -n 3)

rate() { sed -n 's/.*tasks\/s \([0-9]*\).*/\1/p' | head -n1; }
peer=$("${launch[@]}" python3 -m mpi4py.futures Benchmarks/peers/mpi4py_futures.py "$count")
echo "$peer"
peer1=$(grep "chunksize 1 " <<<"$peer" | sed -n 's/.* \([0-9]*\) tasks\/s.*/\1/p')
peerauto=$(grep "auto chunksize" <<<"$peer" | sed -n 's/.* \([0-9]*\) tasks\/s.*/\1/p')
local=$("$bin" local "$count" | rate)
ours1=$("${launch[@]}" "$bin" map "$count" 1 | rate)
oursauto=$("${launch[@]}" "$bin" map "$count" | rate)
latency=$("${launch[@]}" "$bin" latency 200 | sed -n 's/.*: \([0-9.]*\) µs each/\1/p')
pingpong=$(mpirun --oversubscribe --bind-to none -n 2 "$bin" pingpong 2000 | sed -n 's/.*: \([0-9.]*\) µs each/\1/p')
echo "local ProcessPool: $local tasks/s"
echo "MPIPool chunksize 1: $ours1 tasks/s ($(echo "scale=1; $ours1 / $peer1" | bc)x mpi4py.futures)"
echo "MPIPool default chunking: $oursauto tasks/s ($(echo "scale=1; $oursauto / $peerauto" | bc)x mpi4py.futures at its auto chunksize; $(echo "scale=2; $oursauto / $local" | bc)x the local pool)"
echo "MPIPool one task in flight: $latency µs; 8-byte ping-pong: $pingpong µs ($(echo "scale=1; $latency / $pingpong" | bc)x)"
