#!/usr/bin/env bash
# Makes mpcp's three benchmark data sets under DIR (default /work/mpcp-bench/data):
#   small/      50,000 files of 1-16 KiB in 1,000 directories (50 per directory, 2 levels)
#   large/      4 files of 1 GiB (random bytes, so nothing is sparse or compressible)
#   toolchain/  a copy of the Swift toolchain (/opt/swift)
# Usage: make-datasets.sh [DIR] [small|large|toolchain ...]
set -euo pipefail
dir=${1:-/work/mpcp-bench/data}
shift || true
sets=${*:-small large toolchain}
mkdir -p "$dir"
for set in $sets; do
  case $set in
    small)
      rm -rf "$dir/small"
      python3 - "$dir/small" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
block = os.urandom(16 * 1024 * 64)
for d in range(1000):
    sub = os.path.join(root, f"g{d // 32:02d}", f"d{d:04d}")
    os.makedirs(sub)
    for f in range(50):
        size = rng.randint(1024, 16 * 1024)
        start = rng.randint(0, len(block) - size)
        with open(os.path.join(sub, f"f{f:02d}.dat"), "wb") as out:
            out.write(block[start:start + size])
PY
      ;;
    large)
      rm -rf "$dir/large" && mkdir -p "$dir/large"
      for i in 1 2 3 4; do head -c 1G /dev/urandom > "$dir/large/big$i.bin"; done
      ;;
    toolchain)
      rm -rf "$dir/toolchain"
      cp -a /opt/swift "$dir/toolchain"
      ;;
    *) echo "unknown data set: $set" >&2; exit 2 ;;
  esac
done
sync
du -sh "$dir"/* 2>/dev/null
