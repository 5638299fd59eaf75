#!/usr/bin/env bash
# The MPI tests (issue 16), run by .ci/run's MPI section; needs root, iproute2, Open MPI and MPICH.
#
#   scripts/mpi-tests.sh [build]     build mpi-map with the MPI trait against Open MPI (.build-mpi)
#                                    and MPICH (.build-mpich), then run every test below
#   scripts/mpi-tests.sh test        run the tests on binaries built before
#
# Each test prints "ok - NAME" or "not ok - NAME: why"; the script exits 1 if any failed.
# A shell test, not Swift Testing: what is tested is mpirun, mpiexec.mpich and ip netns around
# the built demo, across namespace hosts, with signals to the launcher and to ranks on other
# hosts; and a Swift test target with the trait would build the whole test suite a second time.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
openmpi=$root/.build-mpi/debug/mpi-map
mpich=$root/.build-mpich/debug/mpi-map
failures=0
count=200000

ok() { echo "ok - $1"; }
fail() { echo "not ok - $1: $2"; failures=$((failures + 1)); }

# MPICH's .pc file, as mpi-c, without the -Wl,-z,relro that SwiftPM refuses (with a warning).
mpich_pkgconfig() {
  local dir=$root/.build-mpich-pc
  mkdir -p "$dir"
  sed 's/-Wl,-z,relro//' /usr/lib/x86_64-linux-gnu/pkgconfig/mpich.pc >"$dir/mpi-c.pc"
  echo "$dir"
}

build() {
  local log
  log=$(mktemp)
  swift build --traits MPI --scratch-path .build-mpi --product mpi-map 2>&1 | tee "$log" | grep -E "error|warning:|Build of" || true
  PKG_CONFIG_PATH=$(mpich_pkgconfig) swift build --traits MPI --scratch-path .build-mpich --product mpi-map 2>&1 | tee -a "$log" | grep -E "error|warning:|Build of" || true
  if grep -E "warning:|error:" "$log" >/dev/null; then echo "mpi-tests: the MPI builds have warnings or errors (above)." >&2; rm -f "$log"; exit 1; fi
  rm -f "$log"
  [ -x "$openmpi" ] && [ -x "$mpich" ] || { echo "mpi-tests: the builds made no mpi-map." >&2; exit 1; }
}

checksum_of() { sed -n 's/^checksum \([0-9-]*\) .*/\1/p' <<<"$1" | head -n1; }

expect_checksum() {
  local name=$1 output=$2 status=$3
  local got
  got=$(checksum_of "$output")
  if [ "$status" -ne 0 ]; then fail "$name" "exit status $status: $output"
  elif [ "$got" != "$want" ]; then fail "$name" "checksum '$got', the local pool's is $want"
  else ok "$name (checksum $got)"; fi
}

# Processes that are alive (not zombies) and belong to the job: the demo binaries, the launchers'
# daemons, and anything inside the namespace hosts.
leftovers() {
  local pids=""
  for pid in $(pgrep -f -- "$openmpi|$mpich" 2>/dev/null) $(pgrep -x orted 2>/dev/null) $(pgrep -x mpirun 2>/dev/null) \
             $(for ns in $(ip netns list | awk '{print $1}' | grep -E '^mph[0-9]+$'); do ip netns pids "$ns"; done); do
    [ "$pid" = "$$" ] && continue
    local state
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$state" = Z ] && continue
    pids="$pids $pid"
  done
  echo "$pids"
}

# A map of 50 ms tasks across the namespace hosts; `action PID` disturbs it once it runs; the job
# must end non-zero within `bound` ms of the disturbance (the issue's 5 s unless given), with no
# process left on any host. The figure is printed either way.
disturbed_map() {
  local name=$1 action=$2 bound=${3:-5000}
  local log
  log=$(mktemp)
  scripts/mpi-netns.sh mpirun -n 4 --map-by node "$openmpi" nap 1000 50 >"$log" 2>&1 &
  local job=$!
  # Wait until the map runs: every rank and some local workers exist.
  local deadline=$((SECONDS + 60))
  until grep -q napping "$log" && [ "$(pgrep -f -- "$openmpi" | wc -l)" -ge 8 ]; do
    if [ $SECONDS -ge $deadline ]; then fail "$name" "the map did not start: $(cat "$log")"; kill -9 $job 2>/dev/null; rm -f "$log"; return; fi
    sleep 0.2
  done
  sleep 1
  local started=$(date +%s%N)
  $action
  wait $job
  local status=$?
  local ended=$(date +%s%N)
  local elapsed_ms=$(((ended - started) / 1000000))
  # A dead parent's children are reaped by init a moment later: look until 5 s after the disturbance.
  local left
  left=$(leftovers)
  while [ -n "$left" ] && [ $(( ($(date +%s%N) - started) / 1000000 )) -lt "$bound" ]; do sleep 0.1; left=$(leftovers); done
  if [ "$status" -eq 0 ]; then fail "$name" "the job exited 0"
  elif [ "$elapsed_ms" -gt "$bound" ]; then fail "$name" "the job took ${elapsed_ms} ms to exit (status $status; the bound is $bound ms)"
  elif [ -n "$left" ]; then fail "$name" "processes left after $bound ms: $(ps -o pid,ppid,stat,args -p ${left// /,} 2>/dev/null | tail -n +2)"; kill -9 $left 2>/dev/null
  else ok "$name (exit status $status after ${elapsed_ms} ms, bound $bound ms, no process left)"; fi
  rm -f "$log"
}

kill_serving_rank() {
  # Rank 1 runs on host mph2: the demo process whose parent is that host's orted.
  local orted rank
  orted=$(for pid in $(ip netns pids mph2); do [ "$(cat /proc/$pid/comm 2>/dev/null)" = orted ] && echo "$pid"; done | head -n1)
  rank=$(pgrep -P "$orted" -f -- "$openmpi" | head -n1)
  kill -9 "$rank"
}

# kill -9 of serving rank 1 (one host) while it runs a long task on its MPI thread: the job
# ends non-zero within 5 s, and no process of it is left.
killed_lone() {
  local launcher=$1 binary=$2 variable=$3
  local name="kill -9 of a serving rank during a long lone task (${launcher%% *})"
  local log
  log=$(mktemp)
  $launcher lone 60000 >"$log" 2>&1 &
  local job=$!
  local deadline=$((SECONDS + 60))
  until grep -q "lone task running" "$log"; do
    if [ $SECONDS -ge $deadline ]; then fail "$name" "the task did not start: $(cat "$log")"; kill -9 $job 2>/dev/null; rm -f "$log"; return; fi
    sleep 0.2
  done
  sleep 1   # past the 1 ms inline bound: the standby holds the MPI role
  # Rank 1: the process with $variable=1 whose parent does not have it (its local workers do).
  local rank="" pid
  for pid in $(pgrep -f -- "$binary"); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "$variable=1" || continue
    tr '\0' '\n' <"/proc/$(awk '{print $4}' "/proc/$pid/stat")/environ" 2>/dev/null | grep -qx "$variable=1" && continue
    rank=$pid
  done
  if [ -z "$rank" ]; then fail "$name" "no rank 1 found"; kill -9 $job 2>/dev/null; rm -f "$log"; return; fi
  local started=$(date +%s%N)
  kill -9 "$rank"
  wait $job
  local status=$?
  local elapsed_ms=$((($(date +%s%N) - started) / 1000000))
  local left
  left=$(pgrep -f -- "$binary" | while read -r p; do [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" = Z ] || echo "$p"; done)
  while [ -n "$left" ] && [ $((($(date +%s%N) - started) / 1000000)) -lt 5000 ]; do
    sleep 0.1
    left=$(pgrep -f -- "$binary" | while read -r p; do [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" = Z ] || echo "$p"; done)
  done
  if [ "$status" -eq 0 ]; then fail "$name" "the job exited 0"
  elif [ "$elapsed_ms" -gt 5000 ]; then fail "$name" "the job took ${elapsed_ms} ms to exit (status $status)"
  elif [ -n "$left" ]; then fail "$name" "processes left: $(ps -o pid,ppid,stat,args -p $(tr '\n' ',' <<<"$left" | sed 's/,$//') 2>/dev/null | tail -n +2)"; kill -9 $left 2>/dev/null
  else ok "$name: exit status $status after ${elapsed_ms} ms, no process left"; fi
  rm -f "$log"
}

interrupt_mpirun() { kill -INT "$(pgrep -x mpirun | head -n1)"; }

run_tests() {
  [ -x "$openmpi" ] && [ -x "$mpich" ] || { echo "mpi-tests: build first ($0 build)." >&2; exit 1; }
  local output status

  # Without the trait no binary holds an MPI symbol or links an MPI library (the default build).
  if [ -d .build/debug ]; then
    local bad=""
    for binary in $(find .build/debug/ -maxdepth 1 -type f -perm -u+x ! -name '*.so' ! -name '*.o'); do
      if nm "$binary" 2>/dev/null | grep -E ' (MPI_|PMPI_|ompi_|cmpi_)' >/dev/null || ldd "$binary" 2>/dev/null | grep -E 'libmpi' >/dev/null; then bad="$bad $binary"; fi
    done
    [ -z "$bad" ] && ok "default build: no MPI symbol or library in $(find .build/debug/ -maxdepth 1 -type f -perm -u+x | wc -l) binaries" || fail "default build" "MPI symbols in:$bad"
  else
    fail "default build" "no .build/debug: run 'swift build' first"
  fi
  if [ "$(nm "$openmpi" | grep -c " U MPI_Init_thread")" -ge 1 ] && [ "$(ldd "$mpich" | grep -c libmpich)" -ge 1 ] && [ "$(ldd "$openmpi" | grep -c "libmpi\.so")" -ge 1 ]; then ok "trait builds link Open MPI and MPICH"; else fail "trait builds" "mpi-map does not link MPI"; fi

  output=$("$openmpi" local $count 2>&1)
  want=$(checksum_of "$output")
  [ -n "$want" ] && ok "local ProcessPool (checksum $want)" || fail "local ProcessPool" "$output"

  output=$(timeout 120 "$openmpi" map $count 2>&1); expect_checksum "singleton (no mpirun), Open MPI" "$output" $?
  output=$(timeout 120 "$mpich" map $count 2>&1); expect_checksum "singleton (no mpiexec), MPICH" "$output" $?
  output=$(timeout 120 mpirun --oversubscribe -n 1 "$openmpi" map $count 2>&1); expect_checksum "Open MPI -n 1" "$output" $?
  output=$(timeout 120 mpirun --oversubscribe -n 4 "$openmpi" map $count 2>&1); expect_checksum "Open MPI -n 4" "$output" $?
  output=$(timeout 120 mpiexec.mpich -n 1 "$mpich" map $count 2>&1); expect_checksum "MPICH -n 1" "$output" $?
  output=$(timeout 120 mpiexec.mpich -n 3 "$mpich" map $count 2>&1); expect_checksum "MPICH -n 3" "$output" $?
  output=$(timeout 120 mpirun --oversubscribe -n 3 "$openmpi" map $count 7 2>&1); expect_checksum "Open MPI -n 3, chunks of 7" "$output" $?
  output=$(timeout 120 mpirun --oversubscribe -n 3 "$openmpi" unordered $count 2>&1); expect_checksum "Open MPI -n 3, mapUnordered" "$output" $?
  output=$(timeout 120 "$openmpi" unordered $count 2>&1); expect_checksum "singleton, mapUnordered" "$output" $?
  # Every message above 1000 bytes in parts (as above Int32.max), so parts are joined in order.
  output=$(MULTIPROCESSING_MPI_PART_LIMIT=1000 timeout 120 mpirun -x MULTIPROCESSING_MPI_PART_LIMIT --oversubscribe -n 3 "$openmpi" map $count 2>&1)
  expect_checksum "Open MPI -n 3, messages in parts of 1000 bytes" "$output" $?
  output=$(MULTIPROCESSING_MPI_PART_LIMIT=1000 timeout 120 mpiexec.mpich -n 3 -genv MULTIPROCESSING_MPI_PART_LIMIT 1000 "$mpich" map $count 2>&1)
  expect_checksum "MPICH -n 3, messages in parts of 1000 bytes" "$output" $?
  output=$(timeout 120 mpirun --oversubscribe -n 2 "$openmpi" message 5000000 2>&1)
  grep -q "message 5000000 bytes from rank 1 tag 5: intact" <<<"$output" && ok "MPIMessenger: 5 MB message" || fail "MPIMessenger: 5 MB message" "$output"

  # The local pool and the fork server start before MPI_Init_thread on a serving rank.
  output=$(MULTIPROCESSING_MPI_TRACE=1 timeout 120 mpirun -x MULTIPROCESSING_MPI_TRACE --oversubscribe -n 2 "$openmpi" map 1000 2>&1)
  if grep -q "rank 1 of 2: local pool of [0-9]* workers started before MPI_Init_thread" <<<"$output"; then ok "serving rank starts its local pool before MPI_Init_thread"; else fail "local pool before MPI_Init_thread" "$output"; fi

  for launcher in "mpirun --oversubscribe -n 3 $openmpi" "mpiexec.mpich -n 3 $mpich"; do
    output=$(timeout 120 $launcher throw 100 2>&1)
    if grep -q "error code childFailed index \[3\] type mpi_map.RemoteFailure" <<<"$output" && grep -q "message Task 3 threw on MPI rank [12] (.*): input 3 is not allowed" <<<"$output" \
       && grep -q "decoded RemoteFailure value 3" <<<"$output"; then ok "remote throw reaches rank 0 (${launcher%% *})"; else fail "remote throw (${launcher%% *})" "$output"; fi
  done
  # A chunk's values stay bytes on a serving rank (ProcessPool.mapEncoded): strings of every length
  # (wire-encoded, with their lengths) come back right, and a local worker that SIGKILLs itself
  # inside a serving rank fails only the tasks of the piece it ran (childDied); the job goes on.
  for launcher in "mpirun --oversubscribe -n 3 $openmpi" "mpiexec.mpich -n 3 $mpich"; do
    output=$(timeout 120 $launcher strings 20000 2>&1)
    grep -q "^strings 20000 ok" <<<"$output" && ok "strings through serving ranks (${launcher%% *})" || fail "strings (${launcher%% *})" "$output"
    output=$(timeout 120 $launcher crash 20000 2>&1)
    local failed
    failed=$(sed -n 's/^crash: 20000 results, \([0-9]*\) failed (codes childDied), poison failed true, wrong 0; the next map right true$/\1/p' <<<"$output")
    if [ -n "$failed" ] && [ "$failed" -lt 20000 ]; then ok "a local worker killed inside a serving rank fails $failed of 20000 tasks (${launcher%% *})"; else fail "a local worker killed inside a serving rank (${launcher%% *})" "$output"; fi
  done
  # A map cancelled while queued behind another: join still returns (it hung before the fix).
  output=$(timeout 60 mpirun --oversubscribe -n 3 "$openmpi" cancel 100 2>&1); status=$?
  if [ $status -eq 0 ] && grep -q "second map: cancelled" <<<"$output" && grep -q "first map: 12 results" <<<"$output"; then ok "a cancelled queued map, then join"; else fail "a cancelled queued map, then join" "status $status: $output"; fi
  # submit: a task that finds its rank idle runs in the rank's process (inlineSubmit, the default),
  # else in a local worker (-worker: inlineSubmit false); its error comes back the same either way.
  for launcher in "mpirun --oversubscribe -n 3 $openmpi" "mpiexec.mpich -n 3 $mpich"; do
    for variant in "" -worker; do
      output=$(timeout 120 $launcher submit$variant 20 2>&1)
      grep -q "submit sum 380" <<<"$output" && ok "submit$variant on serving ranks (${launcher%% *})" || fail "submit$variant (${launcher%% *})" "$output"
      output=$(timeout 120 $launcher submit-throw$variant 5 2>&1)
      if grep -q "error code childFailed type mpi_map.RemoteFailure" <<<"$output" && grep -q "message Task 0 threw on MPI rank [12] (.*): input 0 is not allowed" <<<"$output" \
         && grep -q "submit errors decoded 5 of 5" <<<"$output"; then ok "submit-throw$variant: the error reaches rank 0 (${launcher%% *})"; else fail "submit-throw$variant (${launcher%% *})" "$output"; fi
    done
  done

  # An onDone callback that calls get() on another handle and submits: it deadlocked when the MPI
  # thread ran callbacks inline; they run on the pool's callback thread now.
  for launcher in "mpirun --oversubscribe -n 3 $openmpi" "mpiexec.mpich -n 3 $mpich"; do
    output=$(timeout 60 $launcher callback 2>&1); status=$?
    if [ $status -eq 0 ] && grep -q "callback: first 2 other 4 submitted 10" <<<"$output"; then ok "a callback that waits for another handle and submits (${launcher%% *})"; else fail "callback with get() and submit (${launcher%% *})" "status $status: $output"; fi
  done

  # One task in flight runs on a serving rank's MPI thread (MPI_THREAD_SERIALIZED; a standby thread
  # takes the MPI role over when it runs past 1 ms): submit/get round trips, each result checked;
  # a long synchronous task holding that thread while short ones queue behind it (with one serving
  # rank they reach it only as it answers: all done before the long one, and the trace shows the
  # standby took over); a kill -9 of the serving rank during such a task.
  for launcher in "mpirun --oversubscribe -n 3 $openmpi" "mpiexec.mpich -n 3 $mpich"; do
    output=$(timeout 120 $launcher roundtrips 2000 2>&1)
    grep -q "^roundtrips 2000: 4000 results, wrong 0$" <<<"$output" && ok "roundtrips: 4000 submits, results checked (${launcher%% *})" || fail "roundtrips (${launcher%% *})" "$output"
  done
  for launcher in "mpirun -x MULTIPROCESSING_MPI_TRACE --oversubscribe -n 2 $openmpi" "mpiexec.mpich -n 2 -genv MULTIPROCESSING_MPI_TRACE 2 $mpich"; do
    output=$(MULTIPROCESSING_MPI_TRACE=2 timeout 120 $launcher long-lone 2000 20 2>&1)
    if grep -q "^long-lone: 20 short tasks, wrong 0, done in .*, the long task done by then false; long task right in" <<<"$output" && grep -q "mpi-trace 8-standby-took" <<<"$output"; then
      ok "a long task on the MPI thread, short ones behind it: the standby serves them (${launcher%% *})"
    else fail "long task on the MPI thread (${launcher%% *})" "$(grep -v mpi-trace <<<"$output") (standby took over: $(grep -c 'mpi-trace 8-standby-took' <<<"$output"))"; fi
  done
  killed_lone "mpirun --oversubscribe -n 2 $openmpi" "$openmpi" OMPI_COMM_WORLD_RANK
  killed_lone "mpiexec.mpich -n 2 $mpich" "$mpich" PMI_RANK

  # Across hosts: three network namespaces joined by veth pairs on a bridge, TCP between them.
  scripts/mpi-netns.sh up 3 >/dev/null || { fail "namespace hosts" "scripts/mpi-netns.sh up failed"; return; }
  output=$(timeout 120 scripts/mpi-netns.sh mpirun -n 4 --map-by node "$openmpi" map $count 2>&1); expect_checksum "3 namespace hosts, 4 ranks" "$output" $?
  output=$(timeout 120 scripts/mpi-netns.sh mpirun -n 3 --map-by node "$openmpi" strings 20000 2>&1)
  grep -q "^strings 20000 ok" <<<"$output" && ok "strings across namespace hosts" || fail "strings across namespace hosts" "$output"
  output=$(timeout 120 scripts/mpi-netns.sh mpirun -n 3 --map-by node "$openmpi" throw 100 2>&1)
  if grep -q "message Task 3 threw on MPI rank [12] (mph[23]): input 3 is not allowed" <<<"$output"; then ok "remote throw from another host"; else fail "remote throw from another host" "$output"; fi
  # scripts/mpi-netns.sh runs mpirun with odls_base_sigkill_timeout 0 (the setting docs/distributed.md
  # recommends): the teardown is then Open MPI's messages and our processes' deaths, measured at
  # 0.15-0.4 s here, so 2 s is a bound with room under load. With Open MPI's default of 1 s it
  # sleeps 1 s after SIGCONT and up to 1 s after SIGTERM, host after host (2-4.1 s measured): the
  # issue's 5 s holds, with less room, and is checked too.
  disturbed_map "kill -9 of a serving rank on another host during map" kill_serving_rank 2000
  disturbed_map "SIGINT to mpirun during map" interrupt_mpirun 2000
  MPI_NETNS_SIGKILL_TIMEOUT=1 disturbed_map "SIGINT to mpirun during map, Open MPI's default teardown (odls_base_sigkill_timeout 1)" interrupt_mpirun 5000
  scripts/mpi-netns.sh down
  [ -z "$(ip netns list | grep -E '^mph[0-9]+')" ] && ok "namespace hosts removed" || fail "namespace hosts" "not removed"
}

case "${1:-build}" in
  build) build; run_tests ;;
  test) run_tests ;;
  *) echo "usage: $0 [build|test]" >&2; exit 64 ;;
esac
echo "mpi-tests: $failures failed"
[ $failures -eq 0 ]
# mpcp --mpi (issue 17): its own script, on the same machinery; the status covers both.
mpi_tests_status=$?
if [ "${1:-build}" = build ]; then scripts/mpcp-mpi-tests.sh build; else scripts/mpcp-mpi-tests.sh test; fi
mpcp_tests_status=$?
[ $mpi_tests_status -eq 0 ] && [ $mpcp_tests_status -eq 0 ]
