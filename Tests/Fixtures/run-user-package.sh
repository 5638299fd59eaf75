#!/usr/bin/env bash
# The fixture of issue 14: a user's package (UserPackage/) that depends on this checkout by path
# and whose tests start children with task types of its test target, under Swift Testing and
# XCTest. Builds it with zero warnings of ours and runs `swift test`, which must run both kinds of
# test and pass. Run from anywhere: Tests/Fixtures/run-user-package.sh
set -euo pipefail
cd "$(dirname "$0")/UserPackage"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

swift build --build-tests 2>&1 | tee "$log"
if grep -E "^/.*: warning:" "$log" | grep -v "/\.build/checkouts/"; then
  echo "user-package fixture: the build has warnings (see above)." >&2
  exit 1
fi

swift test 2>&1 | tee "$log"
# Both runners must have run, not just one of them.
if ! grep -qE "Executed [1-9][0-9]* tests?, with 0 failures" "$log"; then
  echo "user-package fixture: XCTest did not run its tests (or they failed)." >&2
  exit 1
fi
if ! grep -qE "Test run with [1-9][0-9]* tests? .*passed" "$log"; then
  echo "user-package fixture: Swift Testing did not run its tests (or they failed)." >&2
  exit 1
fi
echo "user-package fixture: passed."
