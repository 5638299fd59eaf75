#!/usr/bin/env bash
# mpcp against its peers on the three data sets of make-datasets.sh, in the same run.
#
#   Benchmarks/mpcp/bench.sh [DATA_DIR] [RUNS] [SETS...]
#   defaults: /work/mpcp-bench/data, 3 runs, "small large toolchain"
#
# Each timing is `<copy command> && sync`: write-back is part of the cost of a copy. The source is
# read once before its data set's runs, so every run starts with a warm page cache, and tools are
# interleaved round by round so that noise from the rest of the machine falls on all of them.
# Copies of the small set are kept until the set is done (ext4 scans the inodes freed in the last
# 60 s before reusing one, so deleting 50,000 files between runs would slow whichever tool comes
# next); copies of the other sets are deleted (and synced) outside the timing.
# The seed's naive copiers (one process or thread per file, 1 KiB reads) run once per set. On the
# small set, floor.c (the same system calls per file as mpcp, in C, with nothing else) gives the
# floor that no copier making those calls can beat.
# The load average of the machine is printed beside each timing: on a shared machine, compare rows
# of the same run, and rerun when the load is high.
#
# FRESH_FS=1 (root only) runs each timing on a new ext4 file system in a loop device (direct I/O,
# image under the output folder): the source is copied onto it untimed, then the timed copy goes
# to the same file system. Every tool then starts from the same empty disk, without the inode
# reuse and fragmentation that earlier runs leave behind on the machine's own file system.
#
# floor_uring.c (built when liburing is installed: apt-get install -y liburing-dev) is floor.c with
# its per-file calls batched through io_uring, a second floor on the small set, in its fastest copy
# mode, "syscall floor, io_uring cfr (C)"; the other modes are tools too, "... rw (C)",
# "... splice (C)" and "... direct (C)". MPCP_URING_FLAGS=defer is passed on to it.
# "syscall floor (C), N threads" is floor.c with N threads instead of one per core, and "mpcp -a -j N"
# is mpcp with N workers.
# MPCP_BASELINE=PATH adds the tool "mpcp baseline -a": another build of mpcp (an earlier commit's),
# timed in the same rounds, for a before-and-after row.
# TOOLS="tool;tool;..." runs only the tools named (as in the table), e.g.
#   TOOLS="syscall floor (C);syscall floor, io_uring cfr (C)" FRESH_FS=1 bench.sh DATA 5 small
# Beside each timing, results.tsv has the copy's user and system CPU time and its seconds before the
# sync (both without the sync).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=${1:-/work/mpcp-bench/data}
runs=${2:-3}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
sets=${*:-small large toolchain}
mpcp=${MPCP:-$root/.build/release/mpcp}
out="$data/../out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
data=$(cd "$data" && pwd)
jobs=$(nproc)
results="$out/results.tsv"
cc -O2 -pthread -o "$out/floor" "$here/floor.c"
uring=0
if cc -O2 -pthread -o "$out/floor_uring" "$here/floor_uring.c" -luring 2>"$out/floor_uring.err"; then uring=1
else echo "  (floor_uring.c not built, no io_uring floor: $(head -c 200 "$out/floor_uring.err"))" >&2; fi
: > "$results"

command_for() { # tool src dst
  local tool=$1 src=$2 dst=$3
  case $tool in
    "mpcp -a") echo "$mpcp -a '$src' '$dst'" ;;
    "mpcp -a --workers processes") echo "$mpcp -a --workers processes '$src' '$dst'" ;;
    "mpcp -a -j "*) local n=${tool#mpcp -a -j }; [[ $n =~ ^[0-9]+$ ]] && echo "$mpcp -a -j $n '$src' '$dst'" ;;
    "mpcp baseline -a") [ -n "${MPCP_BASELINE:-}" ] && echo "$MPCP_BASELINE -a '$src' '$dst'" ;;
    "cp -a") echo "cp -a '$src' '$dst'" ;;
    "rsync -a") echo "rsync -a '$src/' '$dst/'" ;;
    "tar | tar") echo "mkdir '$dst' && tar -C '$src' -cf - . | tar -C '$dst' -xpf -" ;;
    "rclone copy --transfers 8") echo "rclone copy --transfers 8 --links '$src' '$dst'" ;;
    "fpsync -n $jobs") echo "fpsync -n $jobs -t '$out/fpsync-tmp' '$src/' '$dst/'" ;;
    "syscall floor (C)") echo "'$out/floor' '$src' '$dst' $jobs" ;;
    "syscall floor (C), "*" threads") local n=${tool#syscall floor (C), }; n=${n% threads}
      [[ $n =~ ^[0-9]+$ ]] && echo "'$out/floor' '$src' '$dst' $n" ;;
    "syscall floor, io_uring "*" (C)") # rw, splice, cfr or direct: see floor_uring.c
      local mode=${tool#syscall floor, io_uring }; mode=${mode% (C)}
      case $mode in rw|splice|cfr|direct) echo "'$out/floor_uring' '$src' '$dst' $jobs $mode" ;; esac ;;
    "seed copier, processes (Python)") echo "python3 '$here/naive_processes.py' '$src' '$dst' >/dev/null" ;;
    "seed copier, threads (Python)") echo "python3 '$here/naive_threads.py' '$src' '$dst' >/dev/null" ;;
  esac
}

tools=("mpcp -a" "mpcp -a --workers processes" "cp -a" "rsync -a" "tar | tar" "rclone copy --transfers 8" "fpsync -n $jobs" "syscall floor (C)")
[ "$uring" = 1 ] && tools+=("syscall floor, io_uring cfr (C)")
[ -n "${MPCP_BASELINE:-}" ] && tools+=("mpcp baseline -a")
naive=("seed copier, processes (Python)" "seed copier, threads (Python)")
if [ -n "${TOOLS:-}" ]; then
  IFS=';' read -r -a tools <<< "$TOOLS"
  for tool in "${tools[@]}"; do
    [ -n "$(command_for "$tool" s d)" ] || { echo "unknown tool in TOOLS: $tool" >&2; exit 2; }
  done
  naive=()
fi
case " ${tools[*]} " in *" mpcp "*) [ -x "$mpcp" ] || (cd "$root" && swift build -c release --product mpcp >&2) ;; esac

fresh_image="$out/fresh.img" fresh_mount="$out/fresh-mnt" fresh_device=""
fresh_up() { # set: a new ext4 holding a copy of the set as src/
  local bytes; bytes=$(du -sb "$data/$1" | cut -f1)
  rm -f "$fresh_image"; truncate -s $(( (bytes * 5 / 2 >> 20) + 1024 ))M "$fresh_image"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fresh_image"
  fresh_device=$(losetup --direct-io=on -f --show "$fresh_image")
  mkdir -p "$fresh_mount"; mount "$fresh_device" "$fresh_mount"
  cp -a "$data/$1" "$fresh_mount/src"; sync
}
fresh_down() { umount "$fresh_mount"; losetup -d "$fresh_device"; rm -f "$fresh_image"; }

time_one() { # set tool run
  local set=$1 tool=$2 run=$3
  local src="$data/$set" dst="$out/$set-$run-${tool//[^a-zA-Z0-9]/_}"
  if [ "${FRESH_FS:-0}" = 1 ]; then fresh_up "$set"; src="$fresh_mount/src"; dst="$fresh_mount/dst"; fi
  rm -rf "$dst"; sync
  local cmd; cmd=$(command_for "$tool" "$src" "$dst")
  local start end timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f '%U\t%S' -o "$out/last.cpu")
  printf '\t\n' > "$out/last.cpu"
  start=$(date +%s%N)
  "${timer[@]}" bash -c "$cmd" >/dev/null 2>"$out/last.err" || echo "  ($tool exited non-zero: $(head -c 200 "$out/last.err"))" >&2
  local copied; copied=$(date +%s%N)
  sync
  end=$(date +%s%N)
  local seconds; seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  local copy; copy=$(awk -v a="$start" -v b="$copied" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  local cpu; cpu=$(tail -n 1 "$out/last.cpu")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$tool" "$run" "$seconds" "$cpu" "$copy" >> "$results"
  echo "  $set  run $run  $tool: $seconds s, copy $copy s before the sync  (user/sys ${cpu/$'\t'//} s, load $(cut -d' ' -f1 /proc/loadavg))" >&2
  if [ "${FRESH_FS:-0}" = 1 ]; then fresh_down
  elif [ "$set" != small ]; then rm -rf "$dst"; sync; fi
}

for set in $sets; do
  [ -d "$data/$set" ] || { echo "missing $data/$set: run make-datasets.sh first" >&2; exit 2; }
  echo "== $set: $(du -sh "$data/$set" | cut -f1), $(find "$data/$set" | wc -l) entries" >&2
  tar -C "$data/$set" -cf - . | cat > /dev/null   # warm the page cache
  # An untimed copy first (the first copy after a warm-up or a big delete pays for the kernel's
  # catching up), then rounds in a rotated order, so that no tool always goes first.
  warm="$out/$set-warmup"; [ "${FRESH_FS:-0}" = 1 ] || { cp -a "$data/$set" "$warm"; sync; }
  if [ "$set" != small ]; then rm -rf "$warm"; sync; fi
  for run in $(seq 1 "$runs"); do
    n=${#tools[@]}
    for i in $(seq 0 $((n - 1))); do
      tool=${tools[$(( (i + run - 1) % n ))]}
      # The floor copies regular files and directories only: a peer for the small set alone.
      case $tool in "syscall floor"*) [ "$set" = small ] || continue ;; esac
      time_one "$set" "$tool" "$run"
    done
  done
  for tool in "${naive[@]}"; do time_one "$set" "$tool" 1; done
  rm -rf "$out/$set-"*; sync
done

# Medians (seconds with the sync, the copy alone before its sync, and user and system CPU time when
# /usr/bin/time was there), and how many times longer each tool took than mpcp -a (threads), or
# than the first tool when TOOLS left mpcp out.
python3 - "$results" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
cpu = collections.defaultdict(list)
copies = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    s, tool, run, sec, user, system, copy = line.rstrip("\n").split("\t")
    if (s, tool) not in rows: order.append((s, tool))
    rows[(s, tool)].append(float(sec))
    copies[(s, tool)].append(float(copy))
    if user and system: cpu[(s, tool)].append((float(user), float(system)))
for s in dict.fromkeys(k[0] for k in order):
    first = next(k for k in order if k[0] == s)
    basetool = "mpcp -a" if (s, "mpcp -a") in rows else first[1]
    base = statistics.median(rows[(s, basetool)])
    print(f"\n### {s}\n")
    basename = basetool.replace("|", "\\|")
    print(f"| tool | median s | runs (s) | median copy s (before sync) | median user s | median sys s | × {basename} |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for (ss, tool) in order:
        if ss != s: continue
        m = statistics.median(rows[(s, tool)])
        runs = ", ".join(f"{v:.2f}" for v in rows[(s, tool)])
        c = cpu.get((s, tool))
        user = f"{statistics.median(u for u, _ in c):.2f}" if c else ""
        system = f"{statistics.median(k for _, k in c):.2f}" if c else ""
        name = tool.replace("|", "\\|")
        copy = statistics.median(copies[(s, tool)])
        print(f"| {name} | {m:.2f} | {runs} | {copy:.2f} | {user} | {system} | {m / base:.2f} |")
PY
