#!/bin/sh
# tests/fuzz/run.sh BINDIR CORPUS RUNS NAME:MAX_LEN...: runs each libFuzzer harness BINDIR/fuzz_NAME
# for RUNS executions (-runs; -max_len=MAX_LEN bytes) over the committed seeds CORPUS/NAME (read only),
# with the dictionary CORPUS/../dict/NAME.dict when there is one, and a work corpus BINDIR/work/NAME
# that keeps what it finds between runs. A harness that crashes, leaks, trips UBSan or breaks an
# invariant leaves its input in BINDIR/artifacts/ and the rest still run; the exit status is 1 when
# any failed. Extra libFuzzer flags: FUZZ_FLAGS (e.g. FUZZ_FLAGS=-max_total_time=60).
set -u
bindir=$1 corpus=$2 runs=$3
shift 3
failed=""
mkdir -p "$bindir/artifacts"
for spec in "$@"; do
    name=${spec%%:*} max_len=${spec#*:}
    mkdir -p "$bindir/work/$name"
    log="$bindir/work/$name.log"
    dict=""
    [ -f "$corpus/../dict/$name.dict" ] && dict="-dict=$corpus/../dict/$name.dict"
    echo "fuzz_$name: $runs runs, max_len $max_len"
    if "$bindir/fuzz_$name" -runs="$runs" -max_len="$max_len" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$bindir/artifacts/$name-" $dict ${FUZZ_FLAGS:-} \
        "$bindir/work/$name" "$corpus/$name" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz_$name: ok, ${execs:-?} executions, $cov"
    else
        failed="$failed $name"
        echo "fuzz_$name: FAILED (log: $log; input in $bindir/artifacts/)"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*invariant failed)' "$log" | head -5
    fi
done
if [ -n "$failed" ]; then
    echo "make fuzz: failed:$failed"
    exit 1
fi
echo "make fuzz: all $# harnesses ran $runs executions without a crash, leak or UB report"
