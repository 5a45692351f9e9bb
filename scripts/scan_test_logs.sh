#!/usr/bin/env bash
# Fails when a secret of tests/support/test_secrets.txt appears anywhere in a
# test run's output (ctest writes every test's output to LastTest.log).
# usage: scripts/scan_test_logs.sh BUILD_DIR
set -euo pipefail
log=$1/Testing/Temporary/LastTest.log
secrets=$(dirname "$0")/../tests/support/test_secrets.txt
[ -f "$log" ] || { echo "no test log at $log" >&2; exit 1; }
found=0
while IFS= read -r secret; do
  case $secret in ''|'#'*) continue ;; esac
  if grep -qF -- "$secret" "$log"; then
    echo "a test secret appears in the test output: ${secret:0:4}… (grep -nF it in $log)" >&2
    found=1
  fi
done <"$secrets"
[ $found -eq 0 ] && echo "no test secret in $(wc -l <"$log") lines of test output"
exit $found
