#!/usr/bin/env bash
# Builds the API reference of each library with DocC (swift-docc-plugin) and fails on any warning:
# a broken or ambiguous symbol link, a missing page, or a compiler warning in the symbol graph build.
#
#   docs/build-docs.sh                 # every library
#   docs/build-docs.sh MPCopy          # some of them
#
# The archives land in .build/plugins/Swift-DocC/outputs/<Target>.doccarchive (MultiprocessingMPI's
# in .build-mpi-docs/plugins/...); preview one with
# `MULTIPROCESSING_DOCC=1 swift package --disable-sandbox preview-documentation --target <Target>`.
#
# Package.swift adds the plugin only while MULTIPROCESSING_DOCC is set, so a plain `swift build`
# (and a package that depends on this one) never resolves or builds it. Setting it changes the
# dependency graph, so SwiftPM resolves again on the first run with it and on the first run after.
set -euo pipefail
cd "$(dirname "$0")/.."
export MULTIPROCESSING_DOCC=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(Multiprocessing MultiprocessingConnection MultiprocessingManager MPCopy)
    # MultiprocessingMPI compiles only with the MPI trait, against pkg-config's mpi-c: in the
    # default list where an MPI is installed; by name (`docs/build-docs.sh MultiprocessingMPI`) it
    # is built regardless, and fails where there is none.
    if pkg-config --exists mpi-c 2>/dev/null; then
        targets+=(MultiprocessingMPI)
    else
        echo "build-docs: MultiprocessingMPI skipped: pkg-config finds no mpi-c (apt-get install libopenmpi-dev)"
    fi
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    start=$SECONDS
    # The MPI module: with its trait, in a scratch path of its own (as scripts/mpi-tests.sh builds
    # it), so that .build stays free of MPI.
    options=()
    if [ "$target" = MultiprocessingMPI ]; then options=(--traits MPI --scratch-path .build-mpi-docs); fi
    if ! swift package "${options[@]}" generate-documentation --target "$target" >"$log" 2>&1; then
        cat "$log"
        echo "build-docs: generating the documentation of $target failed" >&2
        failed=1
        continue
    fi
    warnings=$(grep -c "warning:" "$log" || true)
    if [ "$warnings" -ne 0 ]; then
        # DocC prints each warning with the source lines around it and its suggested fix.
        grep -v "^\[[0-9]*/[0-9]*\]" "$log"
        echo "build-docs: $target: $warnings warning(s)" >&2
        failed=1
    else
        echo "build-docs: $target: no warnings ($((SECONDS - start)) s)"
    fi
done
exit $failed
