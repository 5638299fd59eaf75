#!/usr/bin/env bash
# The tests of `mpirun -n N mpcp --mpi` (issue 17); scripts/mpi-tests.sh calls this at its end.
# Needs root, iproute2, Open MPI (mpirun, mpicc), rsync and attr.
#
#   scripts/mpcp-mpi-tests.sh [build]   build mpcp with the MPI trait (.build-mpi), then test
#   scripts/mpcp-mpi-tests.sh test      test binaries built before
#   scripts/mpcp-mpi-tests.sh walk      only the distributed walk's tests (one host), on binaries built before
#   scripts/mpcp-mpi-tests.sh sweep     only the leftover sweep of a rank in another pid namespace
#
# Each test prints "ok - NAME" or "not ok - NAME: why"; the script exits 1 if any failed.
# The midway points of the interrupt tests are not a race against the copy's speed: an
# LD_PRELOAD (scripts/mpcp-mpi/hold.c) stops one rank with SIGSTOP at its N-th copy_file_range,
# and the test disturbs the job only once that rank is stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpcp=$root/.build-mpi/debug/mpcp
plain=$root/.build/debug/mpcp
failures=0
ok() { echo "ok - $1"; }
fail() { echo "not ok - $1: $2"; failures=$((failures + 1)); }

build() {
  local log
  log=$(mktemp)
  swift build --traits MPI --scratch-path .build-mpi --product mpcp 2>&1 | tee "$log" | grep -E "error|warning:|Build of" || true
  if grep -E "warning:|error:" "$log" >/dev/null; then echo "mpcp-mpi-tests: the MPI build of mpcp has warnings or errors (above)." >&2; rm -f "$log"; exit 1; fi
  rm -f "$log"
}

# The work area: under /tmp, which every namespace host sees (they share the file system).
work=$(mktemp -d /tmp/mpcp-mpi-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/src

make_tree() {
  mkdir -p "$src/small/deeper/deepest" "$src/empty" "$src/other/empty-too" "$src/links"
  local i
  for i in $(seq 1 300); do printf 'small file %d\n' "$i" >"$src/small/f$i"; done
  for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom >"$src/small/deeper/r$i"; done
  echo deepest >"$src/small/deeper/deepest/d"
  # 150 MiB: three chunks of the default 64 MiB, handed out one by one.
  head -c $((150 << 20)) /dev/urandom >"$src/large"
  ln "$src/small/f1" "$src/links/hard-to-f1"
  ln "$src/small/f1" "$src/other/second-hard-to-f1"
  ln "$src/large" "$src/links/hard-to-large"
  ln -s ../small/f2 "$src/links/symlink-to-f2"
  ln -s /nonexistent/target "$src/links/dangling"
  setfattr -n user.colour -v blue "$src/small/f3"
  setfattr -n user.empty "$src/small/f4"
  setfattr -n user.dir -v yes "$src/small/deeper"
  printf 'latin-1 name\n' >"$src/$(printf 'caf\xe9-\xff')"
  mkdir "$src/$(printf 'dir-\xfe')" && printf x >"$src/$(printf 'dir-\xfe')/inside"
  touch -d '2001-02-03 04:05:06.789' "$src/small/f5"
  chmod 0750 "$src/other"
}

# rsync finds nothing to change: contents (checksums), hard links, ACLs, xattrs, times, modes.
exact() { # name dst (alone in its directory)
  local diff
  diff=$(rsync -ani --checksum -HAX "$src/" "$2/" 2>&1)
  if [ -n "$diff" ]; then fail "$1" "rsync -ani --checksum -HAX finds differences: $(head -n 20 <<<"$diff")"; return 1; fi
  local left
  left=$(find "$2" "$(dirname "$2")" -maxdepth 1 -name '.mpcp-tmp-*' 2>/dev/null; find "$2" -name '.mpcp-tmp-*' 2>/dev/null)
  if [ -n "$left" ]; then fail "$1" "temporaries left: $left"; return 1; fi
  return 0
}

# Every regular file under DST has its source's bytes (nothing partial under a final name).
nothing_partial() { # dst
  local bad="" f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$1"/}
    case "$rel" in .mpcp-tmp-*|*/.mpcp-tmp-*) continue ;; esac
    cmp -s "$f" "$src/$rel" || bad="$bad $rel"
  done < <(find "$1" -type f -print0 2>/dev/null)
  echo "$bad"
}

# This run's mpiruns (their arguments name $work): another session may run these tests at the
# same time, and its mpirun is neither a leftover of ours nor ours to interrupt.
our_mpiruns() {
  local pid
  for pid in $(pgrep -x mpirun 2>/dev/null); do grep -qaF -- "$work" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"; done
}

# Processes of the job still alive (not zombies): mpcp, mpirun, orted, and anything in the hosts.
leftovers() {
  local pids="" pid state
  for pid in $(pgrep -f -- "$mpcp" 2>/dev/null) $(pgrep -x orted 2>/dev/null) $(our_mpiruns) \
             $(for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mph[0-9]+$'); do ip netns pids "$ns"; done); do
    [ "$pid" = "$$" ] && continue
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$state" = Z ] && continue
    pids="$pids $pid"
  done
  echo "$pids"
}

wait_no_leftovers() { # seconds
  local deadline=$((SECONDS + $1)) left
  left=$(leftovers)
  while [ -n "$left" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; left=$(leftovers); done
  echo "$left"
}

# Starts `launcher ... mpcp --mpi ARGS` with rank $hold_rank stopped at its $hold_after-th
# copy_file_range; waits until it is stopped; then runs `action PID-of-the-held-rank`; checks
# the job ends non-zero with no process left and nothing partial under a final name, then that
# the same command without the hold finishes the copy.
disturbed_copy() { # name action hold_rank hold_after launcher... -- mpcp-args...
  local name=$1 action=$2 hold_rank=$3 hold_after=$4
  shift 4
  local launcher=() args=()
  while [ "$1" != -- ]; do launcher+=("$1"); shift; done
  shift
  args=("$@")
  local dst=${args[${#args[@]} - 1]}
  local marker=$work/held.$RANDOM log=$work/log.$RANDOM
  rm -f "$marker"
  MPCP_HOLD_RANK=$hold_rank MPCP_HOLD_AFTER=$hold_after MPCP_HOLD_MARKER=$marker LD_PRELOAD=$work/hold.so \
    "${launcher[@]}" -x LD_PRELOAD -x MPCP_HOLD_RANK -x MPCP_HOLD_AFTER -x MPCP_HOLD_MARKER "$mpcp" --mpi "${args[@]}" >"$log" 2>&1 &
  local job=$!
  local deadline=$((SECONDS + 120)) pid=""
  until [ -s "$marker" ] && pid=$(cat "$marker") && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 $job 2>/dev/null; then
      kill -9 $job 2>/dev/null; wait $job; local early=$?
      fail "$name" "rank $hold_rank never reached copy_file_range call $hold_after (the job ended with status $early): $(tail -n 20 "$log")"; return
    fi
    sleep 0.05
  done
  $action "$pid"
  wait $job
  local status=$?
  local left
  left=$(wait_no_leftovers 10)
  local partial
  partial=$(nothing_partial "$dst")
  if [ "$status" -eq 0 ]; then fail "$name" "the job exited 0 (the hold came too late?): $(tail -n 5 "$log")"
  elif [ -n "$left" ]; then fail "$name" "processes left: $(ps -o pid,ppid,stat,args -p "$(tr ' ' '\n' <<<"$left" | grep . | paste -sd,)" 2>/dev/null | tail -n +2)"; kill -9 $left 2>/dev/null
  elif [ -n "$partial" ]; then fail "$name" "files under their final names differ from their sources:$partial"
  else
    local note=""
    grep -q "mpcp: interrupted: partial files removed" "$log" && note=", rank 0 reported the interruption"
    # The same command again, with nothing held, finishes the copy.
    local again
    again=$("${launcher[@]}" "$mpcp" --mpi "${args[@]}" 2>&1)
    local again_status=$?
    if [ $again_status -ne 0 ]; then fail "$name" "the rerun exited $again_status: $(tail -n 10 <<<"$again")"
    elif exact "$name" "$dst"; then ok "$name (exit status $status, no process left, nothing partial$note; the rerun finished the copy)"; fi
  fi
  rm -f "$log" "$marker"
}

# What each rank did, from MPCP_MPI_TRACE's lines on rank 0's stderr: "RANK FIELD VALUE" per line.
trace_field() { # log field -> one "rank value" line per rank
  sed -n "s/^mpcp --mpi trace: rank \([0-9]*\): .*\b$2 \([0-9]*\).*/\1 \2/p" "$1"
}
ranks_with() { # log field -> how many ranks have field > 0
  trace_field "$1" "$2" | awk '$2 > 0 { n++ } END { print n + 0 }'
}

# The distributed walk: scans spread over the ranks, stealing under imbalance, hard links across
# ranks, the end found with many ranks and with nothing to do, rank 0's output from every rank.
distributed_tests() {
  local output status log=$work/trace.log deep=$work/deep huge=$work/huge linked=$work/linked a b c i
  for a in 1 2 3 4; do for b in 1 2 3 4; do for c in 1 2 3 4; do
    mkdir -p "$deep/a$a/b$b/c$c"
    for i in 1 2 3; do echo "$a$b$c$i" >"$deep/a$a/b$b/c$c/f$i"; done
  done; done; done
  mkdir -p "$huge/only" && for i in $(seq 1 2000); do echo "$i" >"$huge/only/f$i"; done
  mkdir -p "$linked"/{x,y,z} && for i in $(seq 1 40); do echo "inode $i" >"$linked/x/i$i"; ln "$linked/x/i$i" "$linked/y/i$i"; ln "$linked/x/i$i" "$linked/z/i$i"; done
  mkdir -p "$work/nothing" "$work"/dist/{deep,huge,linked,nothing,six,verbose,json}

  # 85 directories, -j 1 on 4 ranks: the scans run on at least three of them, not on rank 0
  # alone (the ranks without work steal it: rank 0 is one of four).
  MPCP_MPI_TRACE=1 timeout 300 mpirun --oversubscribe -x MPCP_MPI_TRACE -n 4 "$mpcp" --mpi -a -j 1 "$deep" "$work/dist/deep/copy" >/dev/null 2>"$log"; status=$?
  local scanned total
  scanned=$(ranks_with "$log" scans); total=$(trace_field "$log" scans | awk '{ n += $2 } END { print n + 0 }')
  if [ $status -ne 0 ]; then fail "the walk is distributed" "status $status: $(tail -n 5 "$log")"
  elif [ "$scanned" -lt 3 ] || [ "$total" -ne 85 ]; then fail "the walk is distributed" "scans on $scanned ranks, $total in all (want >= 3 ranks, 85): $(cat "$log")"
  else deep_exact "the walk is distributed" "$deep" "$work/dist/deep/copy" && ok "the walk is distributed: 85 scans over $scanned of 4 ranks, exact copy"; fi

  # One huge directory: one rank scans it and finds 2,000 files (63 batches); the others steal
  # batches from it, so batches run on at least two ranks.
  MPCP_MPI_TRACE=1 timeout 300 mpirun --oversubscribe -x MPCP_MPI_TRACE -n 3 "$mpcp" --mpi -a -j 1 "$huge" "$work/dist/huge/copy" >/dev/null 2>"$log"; status=$?
  local batched given
  batched=$(ranks_with "$log" batches); given=$(trace_field "$log" "items given" | awk '{ n += $2 } END { print n + 0 }')
  if [ $status -ne 0 ]; then fail "stealing under imbalance" "status $status: $(tail -n 5 "$log")"
  elif [ "$batched" -lt 2 ]; then fail "stealing under imbalance" "batches ran on $batched rank(s): $(cat "$log")"
  else deep_exact "stealing under imbalance" "$huge" "$work/dist/huge/copy" && ok "stealing under imbalance: one directory of 2,000 files copied by $batched of 3 ranks"; fi

  # 40 inodes with three names each, in three directories scanned wherever: every name of an
  # inode goes to its owner rank, which links the others to the first copy.
  output=$(timeout 300 mpirun --oversubscribe -n 4 "$mpcp" --mpi -a -j 1 "$linked" "$work/dist/linked/copy" 2>&1); status=$?
  if [ $status -ne 0 ]; then fail "hard links across ranks" "status $status: $output"
  elif [ "$(find "$work/dist/linked/copy" -type f -links 3 | wc -l)" -ne 120 ]; then fail "hard links across ranks" "not 120 names with 3 links: $(find "$work/dist/linked/copy" -type f -links -3 | head)"
  else deep_exact "hard links across ranks" "$linked" "$work/dist/linked/copy" && ok "hard links across ranks: 40 inodes x 3 names, linked as in the source"; fi

  # The end is found with many ranks (6 on 2 cores) and with nothing to copy.
  output=$(timeout 300 mpirun --oversubscribe -n 6 "$mpcp" --mpi -a "$src" "$work/dist/six/copy" 2>&1); status=$?
  if [ $status -ne 0 ]; then fail "mpirun -n 6" "status $status: $output"
  elif exact "mpirun -n 6 mpcp --mpi -a" "$work/dist/six/copy"; then ok "mpirun -n 6 mpcp --mpi -a: exact copy"; fi
  output=$(timeout 120 mpirun --oversubscribe -n 4 "$mpcp" --mpi -a "$work/nothing" "$work/dist/nothing/copy" 2>&1); status=$?
  if [ $status -eq 0 ] && [ -d "$work/dist/nothing/copy" ] && [ -z "$(ls -A "$work/dist/nothing/copy")" ]; then ok "mpirun -n 4 on an empty directory: ends, empty copy"
  else fail "mpirun -n 4 on an empty directory" "status $status: $output"; fi

  # Rank 0 prints for every rank: -v lists the same paths as mpcp on one host, --json the same totals.
  local here there
  here=$("$mpcp" -a -v "$src" "$work/dist/verbose/one" 2>&1 | sort)
  there=$(timeout 300 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a -v "$src" "$work/dist/verbose/many" 2>&1 | sed "s|$work/dist/verbose/many|$work/dist/verbose/one|g" | sort)
  if [ -n "$here" ] && [ "$here" = "$there" ]; then ok "-v over MPI: rank 0 lists what every rank copied ($(wc -l <<<"$here") lines, as on one host)"
  else fail "-v over MPI" "differs from one host: $(diff <(echo "$here") <(echo "$there") | head -n 10)"; fi
  here=$("$mpcp" -a --json "$src" "$work/dist/json/one" 2>/dev/null)
  there=$(timeout 300 mpirun --oversubscribe -n 4 "$mpcp" --mpi -a --json "$src" "$work/dist/json/many" 2>/dev/null)
  if python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
keys = ["files", "bytes", "directories", "symlinks", "hardLinks", "skipped", "excluded"]
assert all(a[k] == b[k] for k in keys), {k: (a[k], b[k]) for k in keys}
' "$here" "$there" 2>"$log"; then ok "--json over MPI: the same totals as on one host"
  else fail "--json over MPI" "$(cat "$log"): $there"; fi
}

# As exact, for a source other than $src.
deep_exact() { # name src dst
  local diff
  diff=$(rsync -ani --checksum -HAX "$2/" "$3/" 2>&1)
  if [ -n "$diff" ]; then fail "$1" "rsync -ani --checksum -HAX finds differences: $(head -n 20 <<<"$diff")"; return 1; fi
  if [ -n "$(find "$3" "$(dirname "$3")" -name '.mpcp-tmp-*' 2>/dev/null)" ]; then fail "$1" "temporaries left"; return 1; fi
  return 0
}

# A serving rank in another pid namespace than rank 0's (as on another host, or in a container)
# sweeps the leftovers of its own namespace: rank 0 cannot judge them (their pids mean nothing
# where it runs) and leaves them. A run inside a namespace (`unshare --pid`, kept alive by a sleep)
# is held midway and SIGKILLed, which leaves its temporary in a tree; then `mpirun` starts rank 1
# in that namespace (nsenter), and the leftover must be gone after the copy.
foreign_namespace_sweep() {
  local name="a serving rank in another pid namespace sweeps that namespace's leftovers"
  local d=$work/nssweep
  mkdir -p "$d/src" "$d/dst"
  head -c $((150 << 20)) /dev/urandom >"$d/src/big"; echo a >"$d/src/a"
  "$mpcp" -a "$d/src" "$d/dst" >/dev/null 2>&1 || { fail "$name" "the first copy failed"; return; }
  head -c $((150 << 20)) /dev/urandom >"$d/src/big"   # changed: copied again, into dst/src in place
  unshare --pid --fork --mount-proc sleep 600 &
  local ns=$! inner="" deadline=$((SECONDS + 10))
  until inner=$(pgrep -P $ns sleep) || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
  [ -n "$inner" ] || { kill -9 $ns; fail "$name" "unshare --pid gave no namespace"; return; }
  local nsid
  nsid=$(readlink /proc/$inner/ns/pid)
  local marker=$d/held
  OMPI_COMM_WORLD_RANK=0 MPCP_HOLD_RANK=0 MPCP_HOLD_AFTER=2 MPCP_HOLD_MARKER=$marker LD_PRELOAD=$work/hold.so \
    nsenter -t "$inner" -p -m "$mpcp" -a -j 4 "$d/src" "$d/dst" >/dev/null 2>&1 &
  local held=$!
  deadline=$((SECONDS + 60))
  until [ -s "$marker" ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
  # Every mpcp process of that namespace (the held run and its workers) is killed.
  local p
  for p in $(pgrep -f "$mpcp"); do [ "$(readlink /proc/$p/ns/pid 2>/dev/null)" = "$nsid" ] && kill -9 "$p"; done
  # nsenter stops itself when its child stops (job control), so it would never reap it.
  kill -9 $held 2>/dev/null; wait $held 2>/dev/null
  local before
  before=$(find "$d/dst" -name '.mpcp-tmp-*')
  if [ ! -s "$marker" ] || [ -z "$before" ]; then kill -9 $ns; fail "$name" "the held run in the namespace left no temporary"; return; fi
  # Rank 0's own sweep leaves it (another namespace's pid); rank 1, in that namespace, removes it.
  # TCP between the two: shared-memory transports need the peer's pid.
  local output status
  output=$(timeout 300 mpirun --oversubscribe --bind-to none --mca btl self,tcp -n 1 "$mpcp" --mpi -a "$d/src" "$d/dst" \
    : -n 1 nsenter -t "$inner" -p -m "$mpcp" --mpi -a "$d/src" "$d/dst" 2>&1); status=$?
  kill -9 $ns 2>/dev/null; wait $ns 2>/dev/null
  local after
  after=$(find "$d/dst" -name '.mpcp-tmp-*')
  if [ $status -ne 0 ]; then fail "$name" "the MPI copy exited $status: $(tail -n 10 <<<"$output")"
  elif [ -n "$after" ]; then fail "$name" "the leftover stayed: $after"
  elif ! cmp -s "$d/src/big" "$d/dst/src/big"; then fail "$name" "the copy differs from its source"
  else ok "$name (the leftover $(basename "$before") was removed, the copy is exact)"; fi
  rm -rf "$d"
}

interrupt_mpirun() { kill -INT "$(our_mpiruns | head -n1)"; }
kill_rank() { kill -9 "$1"; }

run_tests() {
  [ -x "$mpcp" ] || { echo "mpcp-mpi-tests: build first ($0 build)." >&2; exit 1; }
  cc -O2 -shared -fPIC -o "$work/hold.so" scripts/mpcp-mpi/hold.c -ldl || { fail "build hold.so" "cc failed"; return; }
  mpicc -O2 -o "$work/fake-rank" scripts/mpcp-mpi/fake-rank.c || { fail "build fake-rank" "mpicc failed"; return; }
  make_tree
  local output status n
  mkdir -p "$work"/{n1,n2,n4,singleton,processes,excluded,checksum,m1,m2,m3,m4,m5,int-staged,int-inplace,hosts2,hosts4,kill-inplace,kill-staged,int-hosts}

  # Without the trait, --mpi is a usage error (exit 2) that says how to build with it.
  if [ -x "$plain" ]; then
    output=$("$plain" --mpi -a "$src" "$work/never" 2>&1); status=$?
    if [ $status -eq 2 ] && grep -q -- "--traits MPI" <<<"$output" && [ ! -e "$work/never" ]; then ok "without the trait, --mpi fails with how to build (exit 2)"
    else fail "without the trait, --mpi" "status $status: $output"; fi
  else
    fail "without the trait, --mpi" "no $plain: run 'swift build' first"
  fi

  # One host: -n 1, -n 2 and -n 4 give the same, exact tree; also with no mpirun (a singleton).
  for n in 1 2 4; do
    output=$(timeout 300 mpirun --oversubscribe -n $n "$mpcp" --mpi -a "$src" "$work/n$n/copy" 2>&1); status=$?
    if [ $status -ne 0 ]; then fail "mpirun -n $n mpcp --mpi -a" "status $status: $output"
    elif exact "mpirun -n $n mpcp --mpi -a" "$work/n$n/copy"; then ok "mpirun -n $n mpcp --mpi -a: exact copy"; fi
  done
  output=$(timeout 300 "$mpcp" --mpi -a "$src" "$work/singleton/copy" 2>&1); status=$?
  if [ $status -ne 0 ]; then fail "mpcp --mpi without mpirun" "status $status: $output"
  elif exact "mpcp --mpi without mpirun" "$work/singleton/copy"; then ok "mpcp --mpi without mpirun (a singleton): exact copy"; fi
  # Worker processes on the serving ranks, and -j 1.
  output=$(timeout 300 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a --workers processes -j 2 "$src" "$work/processes/copy" 2>&1); status=$?
  if [ $status -ne 0 ]; then fail "mpcp --mpi --workers processes" "status $status: $output"
  elif exact "mpcp --mpi --workers processes" "$work/processes/copy"; then ok "mpirun -n 3 mpcp --mpi --workers processes -j 2: exact copy"; fi

  # Options mean the same: --json on rank 0 only (one document), -u skips what is done,
  # --exclude leaves names out, --checksum recopies a file whose size and time match.
  output=$(timeout 300 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a -u --json "$src/." "$work/n2/copy" 2>/dev/null); status=$?
  if [ $status -eq 0 ] && python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert d["files"]==0 and d["skipped"]>=340, d' <<<"$output" 2>/dev/null
  then ok "-u --json over MPI: one JSON document, everything skipped"; else fail "-u --json over MPI" "status $status: $output"; fi
  output=$(timeout 300 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a --exclude 'r*' --exclude small/deeper/deepest "$src" "$work/excluded/copy" 2>&1); status=$?
  if [ $status -eq 0 ] && [ ! -e "$work/excluded/copy/small/deeper/r1" ] && [ ! -e "$work/excluded/copy/small/deeper/deepest" ] && [ -e "$work/excluded/copy/small/f1" ]
  then ok "--exclude over MPI"; else fail "--exclude over MPI" "status $status: $output"; fi
  cp -a "$work/n4/copy" "$work/checksum/copy"
  printf 'SMALL FILE 9\n' >"$work/checksum/copy/small/f9"  # same size
  touch -r "$src/small/f9" "$work/checksum/copy/small/f9"  # same time
  output=$(timeout 300 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a -u --checksum "$src/." "$work/checksum/copy" 2>&1); status=$?
  if [ $status -eq 0 ] && cmp -s "$src/small/f9" "$work/checksum/copy/small/f9"; then ok "--checksum over MPI recopies a same-size, same-time file"
  else fail "--checksum over MPI" "status $status: $output"; fi

  # A usage error on rank 0 (a missing source): the serving ranks are told to stop, exit 2.
  output=$(timeout 120 mpirun --oversubscribe -n 3 "$mpcp" --mpi -a "$work/missing" "$work/never" 2>&1); status=$?
  if [ $status -eq 2 ] && grep -q "mpcp: cannot stat" <<<"$output" && [ -z "$(wait_no_leftovers 10)" ]
  then ok "a usage error on rank 0 stops every rank (exit 2)"; else fail "a usage error on rank 0" "status $status: $output"; fi

  # A rank that does not see the trees as rank 0 does (started in another directory, where the
  # relative operand names another tree): a clear error, exit 2, nothing copied.
  mkdir -p "$work/a" "$work/b"
  cp -a "$src/small" "$work/a/t"; cp -a "$src/small" "$work/b/t"
  output=$(timeout 120 mpirun --oversubscribe -n 1 --wdir "$work/a" "$mpcp" --mpi -a t copy : -n 1 --wdir "$work/b" "$mpcp" --mpi -a t copy 2>&1); status=$?
  if [ $status -eq 2 ] && grep -q "every rank must see the same file system" <<<"$output" && grep -q "the source directory 't' is another directory here" <<<"$output" && [ ! -e "$work/a/copy" ]
  then ok "a rank that sees another tree: clear error, exit 2"; else fail "a rank that sees another tree" "status $status: $output"; fi

  # Malformed or unexpected MPI messages: a clear error, never a crash (a C rank speaks wrongly).
  output=$(timeout 120 mpirun --oversubscribe -n 1 "$mpcp" --mpi -a "$src" "$work/m1/copy" : -n 1 "$work/fake-rank" garbage-ready 2>&1); status=$?
  if [ $status -eq 2 ] && grep -q "mpcp: --mpi: rank 0 got a \`ready\` message (tag 2, 24 bytes, from rank 1): rank 1 answered the setup with a message that cannot be decoded" <<<"$output" && [ ! -e "$work/m1/copy" ]
  then ok "rank 0 gets an undecodable answer: clear error"; else fail "rank 0 gets an undecodable answer" "status $status: $output"; fi
  output=$(timeout 120 mpirun --oversubscribe -n 1 "$mpcp" --mpi -a "$src" "$work/m2/copy" : -n 1 "$work/fake-rank" unexpected-tag 2>&1); status=$?
  if [ $status -eq 2 ] && grep -q "rank 0 got an unexpected message during the setup: tag 99 (unknown), 1 bytes, from rank 1" <<<"$output"
  then ok "rank 0 gets an unexpected tag: clear error"; else fail "rank 0 gets an unexpected tag" "status $status: $output"; fi
  output=$(timeout 120 mpirun --oversubscribe -n 1 "$work/fake-rank" garbage-setup : -n 1 "$mpcp" --mpi -a "$src" "$work/m3/copy" 2>&1); status=$?
  if grep -q "fake rank 0 got tag 8 from rank 1: got a \`setup\` message (tag 1, 10 bytes, from rank 0): the setup from rank 0 cannot be decoded" <<<"$output" && ! grep -qi "crash\|fatal error\|backtrace" <<<"$output"
  then ok "a serving rank gets an undecodable setup: clear error to rank 0"; else fail "a serving rank gets an undecodable setup" "status $status: $output"; fi
  # During the walk: rank 0 is sent a `work` message that is no list of work items (the unit
  # tests, MPIMessageCheckTests, feed every message type's decoder such bytes).
  mkdir -p "$work/m4" "$work/m5"
  output=$(timeout 120 mpirun --oversubscribe -n 1 "$mpcp" --mpi -a "$src" "$work/m4/copy" : -n 1 "$work/fake-rank" garbage-work 2>&1); status=$?
  if [ $status -eq 2 ] && grep -q "mpcp: --mpi: rank 0 got a \`work\` message (tag 10, 17 bytes, from rank 1): it cannot be decoded" <<<"$output" \
     && ! grep -qi "crash\|fatal error\|backtrace" <<<"$output" && [ ! -e "$work/m4/copy" ] && [ -z "$(wait_no_leftovers 10)" ]
  then ok "rank 0 is sent garbage work during the walk: clear error, exit 2, nothing under the final name"; else fail "rank 0 is sent garbage work" "status $status: $output"; fi
  # A rank that cancels says `cancel` and `drained` at once: rank 0 must count the drained that
  # arrives before it has moved to its drain phase (it dropped it, and waited for ever).
  output=$(timeout 60 mpirun --oversubscribe -n 1 "$mpcp" --mpi -a "$src" "$work/m5/copy" : -n 1 "$work/fake-rank" cancel-drained 2>&1); status=$?
  if [ $status -ne 124 ] && grep -q "fake rank 1 got cleanup" <<<"$output" && grep -q "rank 0 got a \`final\` message (tag 22, 14 bytes, from rank 1): it cannot be decoded" <<<"$output" \
     && [ -z "$(wait_no_leftovers 10)" ]
  then ok "cancel and drained at once: rank 0 drains, cleans up and ends"; else fail "cancel and drained at once" "status $status: $output"; fi

  distributed_tests
  foreign_namespace_sweep

  # Interrupts on one host: SIGINT to mpirun while rank 1 is held at its 40th copy_file_range
  # (among the small files), staged and in place.
  disturbed_copy "SIGINT to mpirun midway (staged tree), then rerun" interrupt_mpirun 1 40 \
    timeout 300 mpirun --oversubscribe -n 2 -- -a "$src" "$work/int-staged/copy"
  disturbed_copy "SIGINT to mpirun midway (--no-staging), then rerun" interrupt_mpirun 1 40 \
    timeout 300 mpirun --oversubscribe -n 2 -- -a --no-staging "$src" "$work/int-inplace/copy"

  # Across hosts: three network namespaces, ranks spread over them (rank 0 on mph1).
  scripts/mpi-netns.sh up 3 >/dev/null || { fail "namespace hosts" "scripts/mpi-netns.sh up failed"; return; }
  for n in 2 4; do
    output=$(timeout 300 scripts/mpi-netns.sh mpirun -n $n --map-by node "$mpcp" --mpi -a "$src" "$work/hosts$n/copy" 2>&1); status=$?
    if [ $status -ne 0 ]; then fail "mpcp --mpi across hosts, -n $n" "status $status: $output"
    elif exact "mpcp --mpi across hosts, -n $n" "$work/hosts$n/copy"; then ok "mpcp --mpi across $(( n < 3 ? n : 3 )) namespace hosts, -n $n: exact copy"; fi
  done
  # kill -9 of rank 1 (on host mph2) while it is held in the large file's chunks; rank 2 (mph3)
  # goes on meanwhile. The job ends (MPI), nothing partial under a final name, a rerun finishes.
  disturbed_copy "kill -9 of a rank on another host midway (--no-staging), then rerun" kill_rank 1 3 \
    timeout 300 scripts/mpi-netns.sh mpirun -n 3 --map-by node -- -a --no-staging "$src" "$work/kill-inplace/copy"
  disturbed_copy "kill -9 of a rank on another host midway (staged tree), then rerun" kill_rank 2 2 \
    timeout 300 scripts/mpi-netns.sh mpirun -n 3 --map-by node -- -a "$src" "$work/kill-staged/copy"
  disturbed_copy "SIGINT to mpirun midway across hosts, then rerun" interrupt_mpirun 2 2 \
    timeout 300 scripts/mpi-netns.sh mpirun -n 3 --map-by node -- -a "$src" "$work/int-hosts/copy"
  scripts/mpi-netns.sh down
}

case "${1:-build}" in
  build) build; run_tests ;;
  test) run_tests ;;
  walk) make_tree; distributed_tests ;;  # only the distributed walk's tests, on binaries built before
  sweep) cc -O2 -shared -fPIC -o "$work/hold.so" scripts/mpcp-mpi/hold.c -ldl && foreign_namespace_sweep ;;  # only that test
  *) echo "usage: $0 [build|test|walk|sweep]" >&2; exit 64 ;;
esac
echo "mpcp-mpi-tests: $failures failed"
[ $failures -eq 0 ]
