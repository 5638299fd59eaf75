#!/bin/sh
# Builds the manager's libFuzzer target and runs it for $1 seconds (60 by default).
#   Fuzz/run.sh            # a minute
#   Fuzz/run.sh 3600       # an hour
# The corpus grows in Fuzz/corpus (not committed); a crash leaves crash-* in Fuzz/. Replay one
# with: Fuzz/.build/debug/ManagerRequestFuzzer Fuzz/crash-<hash>
set -eu
cd "$(dirname "$0")"
# SwiftPM's own --sanitize=fuzzer (not -Xswiftc) links libFuzzer's main in place of the target's.
# SwiftPM hands swiftc one -sanitize= flag per --sanitize, and swiftc keeps only the last one:
# with --sanitize=fuzzer --sanitize=address alone, the Swift code (the harness, the manager) had
# ASan but no coverage instrumentation, and libFuzzer saw only the C targets' edges (cov: 2, the
# shim's). -Xswiftc comes last, so its combined flag is the one swiftc keeps, for every module
# and for the link; clang (the C targets) takes both --sanitize flags.
swift build -c debug --product ManagerRequestFuzzer \
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
mkdir -p corpus
# libFuzzer reports crashes itself; Swift's backtracer would only hold the terminal.
SWIFT_BACKTRACE=enable=no exec .build/debug/ManagerRequestFuzzer corpus \
    -max_total_time="${1:-60}" -timeout=10 -rss_limit_mb=4096 -artifact_prefix=./
