#!/bin/sh
# check_totals.sh: run by `make check` once every test has run, before the harness's summary (passing
# or not): prints each Check suite's own totals (from its log) and their sum, as "Check: N passed, N
# failed". Usage: check_totals.sh LOG...
total=0 failed=0 suites=0
for log in "$@"; do
    [ -f "$log" ] || continue
    line=$(grep -h "^[0-9]*%: Checks: " "$log" | tail -n 1)
    [ -n "$line" ] || continue
    echo "${log%.log}: $line"
    n=$(echo "$line" | sed 's/.*Checks: \([0-9]*\).*/\1/')
    f=$(echo "$line" | sed 's/.*Failures: \([0-9]*\).*/\1/')
    e=$(echo "$line" | sed 's/.*Errors: \([0-9]*\).*/\1/')
    total=$((total + n)); failed=$((failed + f + e)); suites=$((suites + 1))
done
echo "Check totals over $suites suites:"
echo "Check: $((total - failed)) passed, $failed failed"
