#!/usr/bin/env bash
# Open MPI's launcher agent (plm_rsh_agent) for the namespace hosts of scripts/mpi-netns.sh: where
# mpirun would run `ssh HOST COMMAND`, this runs COMMAND inside that host's network namespace, with a
# hostname of its own (so MPI_Get_processor_name names the host).
set -euo pipefail
# ssh options Open MPI may pass before the host (-x: no X11 forwarding).
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
host=$1
shift
k=${host##*.}
ns=mph$k
ip netns list | awk '{print $1}' | grep -qx "$ns" || { echo "mpi-netns-rsh: no host $host (namespace $ns)" >&2; exit 255; }
exec ip netns exec "$ns" unshare --uts sh -c 'hostname '"$ns"'; exec sh -c "$0"' "$*"
