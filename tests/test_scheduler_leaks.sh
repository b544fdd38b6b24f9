#!/bin/sh
# test_scheduler_leaks.sh: tests/test_scheduler (10,000 requests per policy with queueing, preemption and
# cancellations, then the drain) under valgrind's leak checker, in one process (CK_FORK=no): no invalid
# access, nothing definitely or indirectly lost. Skipped (77) where valgrind is not installed.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
command -v valgrind >/dev/null 2>&1 || { echo "SKIP: valgrind is not installed"; exit 77; }
prog="${DUET_BUILDDIR:-.}/tests/test_scheduler"
CK_FORK=no valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=3 "$prog" \
    >"$tmp/out" 2>&1
rc=$?
tail -3 "$tmp/out"
check "test_scheduler under valgrind: suite passed, no errors or leaks (exit $rc)" test $rc -eq 0
exit $fail
