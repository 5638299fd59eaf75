#!/usr/bin/env bash
# MPIPool beside mpi4py.futures (issue 16): 1 + 2 ranks on this host, 100,000 trivial tasks, Open
# MPI, release build. Needs `pip install mpi4py` (4.x, which binds Debian's Open MPI at run time).
#   scripts/mpi-bench.sh [N] [ROUNDS]          (MPI_BENCH_BIN=path: time that mpi-map, built before)
# Each round runs every measurement once, one after the other (mpi4py.futures, the local
# ProcessPool, MPIPool at chunksize 1 and at default chunking, one task in flight from the main
# actor and with get(), the raw 8-byte ping-pong), so that the peers of a ratio share the
# machine's load; ROUNDS (default 5) rounds alternate them, and the summary gives each figure's
# median and the median of each round's ratio.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
count=${1:-100000}
rounds=${2:-5}
# MPI_BENCH_BIN=path: time that mpi-map instead of building one (to set two builds side by side).
if [ -n "${MPI_BENCH_BIN:-}" ]; then
  bin=$MPI_BENCH_BIN
else
  swift build -c release --traits MPI --scratch-path .build-mpi --product mpi-map 2>&1 | grep -E "error|warning:|Build of"
  bin=$PWD/.build-mpi/release/mpi-map
fi
launch=(mpirun --oversubscribe --bind-to none -n 3)

rate() { sed -n 's/.*tasks\/s \([0-9]*\).*/\1/p' | head -n1; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc; }
declare -A all
add() { all[$1]="${all[$1]:-} $2"; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  peer=$("${launch[@]}" python3 -m mpi4py.futures Benchmarks/peers/mpi4py_futures.py "$count")
  peer1=$(grep "chunksize 1 " <<<"$peer" | sed -n 's/.* \([0-9]*\) tasks\/s.*/\1/p')
  peerauto=$(grep "auto chunksize" <<<"$peer" | sed -n 's/.* \([0-9]*\) tasks\/s.*/\1/p')
  peersubmit=$(grep "submit" <<<"$peer" | sed -n 's/.*: \([0-9]*\) µs each.*/\1/p')
  local=$("$bin" local "$count" | rate)
  ours1=$("${launch[@]}" "$bin" map "$count" 1 | rate)
  oursauto=$("${launch[@]}" "$bin" map "$count" | rate)
  latency=$("${launch[@]}" "$bin" latency 1000)
  # The same from a nonisolated caller with the blocking get() (no main-actor hop per task); a
  # binary from before this mode prints its usage instead, and the figure stays empty.
  latget=$("${launch[@]}" "$bin" latency-get 1000 2>/dev/null | sed -n 's/.*median \([0-9.]*\) µs.*/\1/p')
  pingpong=$(mpirun --oversubscribe --bind-to none -n 2 "$bin" pingpong 5000)
  latmean=$(sed -n 's/.*: \([0-9.]*\) µs each.*/\1/p' <<<"$latency"); latmed=$(sed -n 's/.*median \([0-9.]*\) µs.*/\1/p' <<<"$latency")
  ppmean=$(sed -n 's/.*: \([0-9.]*\) µs each.*/\1/p' <<<"$pingpong"); ppmed=$(sed -n 's/.*median \([0-9.]*\) µs.*/\1/p' <<<"$pingpong")
  echo "round $round (load $(cut -d' ' -f1 /proc/loadavg)): mpi4py chunksize 1 $peer1/s, auto $peerauto/s, submit $peersubmit µs;" \
       "local pool $local/s; MPIPool chunksize 1 $ours1/s, default $oursauto/s; one task in flight mean $latmean µs median $latmed µs;" \
       "get() median ${latget:--} µs; ping-pong mean $ppmean µs median $ppmed µs"
  add peer1 "$peer1"; add peerauto "$peerauto"; add peersubmit "$peersubmit"; add local "$local"; add ours1 "$ours1"; add oursauto "$oursauto"
  add latmean "$latmean"; add latmed "$latmed"; add ppmean "$ppmean"; add ppmed "$ppmed"
  add r1 "$(ratio "$ours1" "$peer1")"; add rauto "$(ratio "$oursauto" "$peerauto")"; add rlocal "$(ratio "$oursauto" "$local")"
  add rlatmed "$(ratio "$latmed" "$ppmed")"; add rlatmean "$(ratio "$latmean" "$ppmean")"
  if [ -n "$latget" ]; then add latget "$latget"; add rlatget "$(ratio "$latget" "$ppmed")"; fi
done
m() { median <<<"${all[$1]}"; }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians of $rounds rounds, $count tasks:"
echo "  mpi4py.futures: chunksize 1 $(m peer1) tasks/s; auto chunksize $(m peerauto) tasks/s; submit().result() $(m peersubmit) µs"
echo "  local ProcessPool: $(m local) tasks/s"
echo "  MPIPool chunksize 1: $(m ours1) tasks/s (per-round ratio to mpi4py.futures: median $(m r1)x; rounds:${all[r1]})"
echo "  MPIPool default chunking: $(m oursauto) tasks/s (to mpi4py's auto: median $(m rauto)x; rounds:${all[rauto]}) (to the local pool: median $(m rlocal)x; rounds:${all[rlocal]})"
echo "  one task in flight: median $(m latmed) µs, mean $(m latmean) µs; 8-byte ping-pong: median $(m ppmed) µs, mean $(m ppmean) µs"
echo "    ratio of medians per round: median $(m rlatmed)x (rounds:${all[rlatmed]}); of means: median $(m rlatmean)x (rounds:${all[rlatmean]})"
[ -n "${all[latget]:-}" ] && echo "  one task in flight with get() (latency-get): median $(m latget) µs; to the ping-pong's median per round: median $(m rlatget)x (rounds:${all[rlatget]})"
