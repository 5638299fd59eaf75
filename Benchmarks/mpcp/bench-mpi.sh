#!/usr/bin/env bash
# The cost of MPI on one host (issue 17): `mpirun -n 2 mpcp --mpi -a` (rank 0 plans, rank 1 copies
# with the host's cores) against `mpcp -a` on the same host, in the same run, alternated round by
# round, on make-datasets.sh's small (50,000 files) and large (4 x 1 GiB) sets.
#
#   Benchmarks/mpcp/bench-mpi.sh [DATA_DIR] [RUNS] [SETS...]
#   defaults: /work/mpcp-mpi-bench/data, 5 runs, "small large"
#
# Needs release builds of both: `swift build -c release --product mpcp` (.build/release/mpcp) and
# `swift build -c release --traits MPI --scratch-path .build-mpi --product mpcp`
# (.build-mpi/release/mpcp); MPCP=... and MPCP_MPI=... choose others.
# Each timing is `<copy command> && sync`, as in bench.sh, and the mpirun figure includes mpirun's
# own start and end (what a user waits for). Copies of the small set are kept until the set is done
# (see bench.sh: ext4's inode reuse); copies of the large set are deleted and synced outside the
# timing. One extra MPI run per set measures rank 0's CPU time (user + system, /usr/bin/time on rank
# 0 alone through mpirun's MPMD form), which divided by the items and the files gives the per-item
# and per-file cost of the coordinator that docs/distributed.md scales from.
# Each round also times `mpirun -n 2 /bin/true` (mpirun's own start and end, with no MPI in the
# ranks), and the summary gives the MPI copy's ratio against `mpcp -a` and against `mpcp -a` plus
# that. MPIRUN_ARGS (words) go to every mpirun, e.g. MPIRUN_ARGS="-x OMPI_MCA_pml=^ucx" for Open
# MPI's own choice of PML instead of the ob1 that mpcp picks on one host (docs/distributed.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${1:-/work/mpcp-mpi-bench/data}
runs=${2:-5}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
sets=${*:-small large}
mpcp=${MPCP:-$root/.build/release/mpcp}
mpcp_mpi=${MPCP_MPI:-$root/.build-mpi/release/mpcp}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x "$mpcp" ] && [ -x "$mpcp_mpi" ] || { echo "bench-mpi: build $mpcp and $mpcp_mpi first (see the top of this script)." >&2; exit 1; }
for set in $sets; do [ -d "$data/$set" ] || "$here/make-datasets.sh" "$data" "$set"; done
out=$data/../out-mpi
mkdir -p "$out"
read -r -a extra <<<"${MPIRUN_ARGS:-}"
mpirun_n2=(mpirun --oversubscribe --bind-to none "${extra[@]}" -n 2)

seconds() { # command...: runs it, then sync; prints the seconds
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  sync
  end=$(date +%s%N)
  awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f\n", (b - a) / 1e9}'
}

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for set in $sets; do
  src=$data/$set
  cat "$src"/* >/dev/null 2>&1 || find "$src" -type f -exec cat {} + >/dev/null
  rm -rf "$out/$set" && mkdir -p "$out/$set" && sync
  : >"$out/$set.one" && : >"$out/$set.mpi" && : >"$out/$set.true"
  for round in $(seq 1 "$runs"); do
    order="one mpi true"
    [ $((round % 2)) -eq 0 ] && order="true mpi one"
    for tool in $order; do
      dst=$out/$set/$tool-$round
      if [ "$tool" = one ]; then t=$(seconds "$mpcp" -a "$src" "$dst")
      elif [ "$tool" = true ]; then t=$(seconds "${mpirun_n2[@]}" /bin/true)
      else t=$(seconds "${mpirun_n2[@]}" "$mpcp_mpi" --mpi -a "$src" "$dst"); fi
      echo "$t" >>"$out/$set.$tool"
      echo "$set round $round $tool: $t s (load $(cut -d' ' -f1 /proc/loadavg))"
      [ "$set" = small ] || [ "$tool" = true ] || { rm -rf "$dst"; sync; }
    done
  done
  # Rank 0's CPU time alone, in one more MPI run.
  cpu=$(mpirun --oversubscribe --bind-to none "${extra[@]}" -n 1 /usr/bin/time -f "%U %S" "$mpcp_mpi" --mpi -a "$src" "$out/$set/cpu" : -n 1 "$mpcp_mpi" --mpi -a "$src" "$out/$set/cpu" 2>&1 >/dev/null | tail -n1)
  rm -rf "$out/$set" && sync
  one=$(median <"$out/$set.one")
  mpi=$(median <"$out/$set.mpi")
  true_=$(median <"$out/$set.true")
  echo "$set: mpcp -a median $one s, mpirun -n 2 mpcp --mpi -a median $mpi s, ratio $(awk -v a="$mpi" -v b="$one" 'BEGIN {printf "%.3f", a / b}'); mpirun -n 2 /bin/true median $true_ s, ratio to mpcp -a plus that $(awk -v a="$mpi" -v b="$one" -v c="$true_" 'BEGIN {printf "%.3f", a / (b + c)}'); rank 0 CPU (user system): $cpu s"
done
