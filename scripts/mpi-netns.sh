#!/usr/bin/env bash
# Hosts for MPI tests (issue 16), as network namespaces on this machine.
#
#   scripts/mpi-netns.sh up [N]      make N hosts (default 3): namespaces mph1 ... mphN, each with
#                                    an interface mpeth0 at 10.77.0.K/24, joined by veth pairs to a
#                                    bridge mpbr0 in this namespace
#   scripts/mpi-netns.sh down        remove them (and kill whatever still runs inside them)
#   scripts/mpi-netns.sh hostfile    print an Open MPI hostfile for the hosts that exist
#   scripts/mpi-netns.sh mpirun ...  run Open MPI's mpirun on host 1, starting the remote ranks
#                                    through scripts/mpi-netns-rsh.sh, TCP only, over mpeth0
#
# The namespaces share the machine's processes and files (only the network differs), so the same
# binary runs everywhere, and `pgrep` in this namespace sees every "host"'s processes. Needs root
# and iproute2.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix=mph
subnet=10.77.0

hosts() { ip netns list | awk '{print $1}' | grep -E "^${prefix}[0-9]+$" | sort -V || true; }

up() {
  local count=${1:-3}
  down >/dev/null 2>&1 || true
  ip link add mpbr0 type bridge
  ip link set mpbr0 up
  for k in $(seq 1 "$count"); do
    local ns="$prefix$k"
    ip netns add "$ns"
    ip link add "mpv$k" type veth peer name mpeth0 netns "$ns"
    ip link set "mpv$k" master mpbr0
    ip link set "mpv$k" up
    ip -n "$ns" addr add "$subnet.$k/24" dev mpeth0
    ip -n "$ns" link set mpeth0 up
    ip -n "$ns" link set lo up
  done
  echo "mpi-netns: $count hosts up: $(hosts | tr '\n' ' ')"
}

down() {
  for ns in $(hosts); do
    # Whatever still runs inside a host (a test that failed midway) dies with it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
  done
  ip link del mpbr0 2>/dev/null || true
}

hostfile() {
  local slots=${1:-2}
  for ns in $(hosts); do echo "$subnet.${ns#"$prefix"} slots=$slots"; done
}

run_mpirun() {
  [ -n "$(hosts)" ] || { echo "mpi-netns: no hosts; run '$0 up' first." >&2; exit 1; }
  local file
  file=$(mktemp /tmp/mpi-netns-hosts.XXXXXX)
  hostfile 2 >"$file"
  # Host 1 runs mpirun (and is one of the hosts); the others are reached through the rsh agent.
  # TCP only, on mpeth0, for both the runtime (oob) and the messages (btl).
  # odls_base_sigkill_timeout: when a job ends early (SIGINT to mpirun, a rank that died), Open MPI
  # sends each host's ranks SIGCONT, sleeps this many seconds, sends SIGTERM, sleeps again unless
  # a rank's SIGCHLD cuts the sleep short, then SIGKILL, and it does mpirun's host before it tells
  # the other hosts' daemons: 2 to 4 s at its default of 1. MPIPool's processes need no grace (they
  # die at SIGTERM, their local workers with them), so 0 here (docs/distributed.md, "Failure");
  # MPI_NETNS_SIGKILL_TIMEOUT=1 runs with Open MPI's default.
  set +e
  ip netns exec "${prefix}1" unshare --uts sh -c 'hostname '"${prefix}1"'; exec "$@"' sh \
    mpirun --allow-run-as-root --oversubscribe --hostfile "$file" \
    --mca plm_rsh_agent "$here/mpi-netns-rsh.sh" \
    --mca btl tcp,self --mca btl_tcp_if_include mpeth0 --mca oob_tcp_if_include mpeth0 \
    --mca odls_base_sigkill_timeout "${MPI_NETNS_SIGKILL_TIMEOUT:-0}" \
    --bind-to none "$@"
  local status=$?
  rm -f "$file"
  return $status
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  hostfile) shift; hostfile "$@" ;;
  mpirun) shift; run_mpirun "$@" ;;
  *) echo "usage: $0 up [N] | down | hostfile [slots] | mpirun ARGS..." >&2; exit 64 ;;
esac
