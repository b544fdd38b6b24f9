#!/bin/bash
# scripts/gpu_calibrated.sh: the calibrated modes (issue 11: int8 / fp8 KV cache so far) on the lent GPU
# machine, in stages (one device call each, back to back while the machine stays warm):
#   build  as scripts/gpu_quant.sh build (duet and the test programs with CUDA in /tmp/duet-build)
#   test   the GPU suites that hold the quantized cache to its CPU emulation: test_gpu_ops (codes bit for
#          bit, attention over the codes), test_gpu_model (every tap against the ref in the same mode)
#          ($OUT/test_gpu_ops.log, test_gpu_model.log; the summary lines printed)
#   bench  duet bench on the synthetic LLaMA-7B, fp16 weights, KV cache none / int8 / fp8, batch 1 and
#          64 at 8/50 and 923/100 ($OUT/bench_kv.jsonl, bench_kv.txt)
# usage, from the source root, carry [".debs", ".devdata"]:
#   bash scripts/gpu_calibrated.sh build test bench
set -u
out=${OUT:-$PWD/gpu_calibrated_out}
mkdir -p "$out"
src=$PWD
b=/tmp/duet-build
export DUET_DATA=${DUET_DATA:-$src/.devdata}
for stage in "$@"; do
    t0=$(date +%s)
    echo "== stage $stage"
    case $stage in
    build)
        bash scripts/gpu_quant.sh build || exit 1
        ;;
    test)
        [ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
        cd $b
        make -j16 check TESTS="tests/test_gpu_ops tests/test_gpu_model" >/tmp/check_kv.log 2>&1
        grep -E "^(PASS|FAIL|SKIP|ERROR)" /tmp/check_kv.log
        for t in test_gpu_ops test_gpu_model; do
            cp tests/$t.log "$out/$t.log" 2>/dev/null
            grep -E "^kv |^gemv rope\+kv |^  kv-|^kv-|Checks|rel_l2 .* > |FAIL|Assertion|error" tests/$t.log | grep -v "^  kv-.* ok$" | head -80
        done
        cd "$src"
        ;;
    bench)
        [ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
        $b/duet bench --batch 1,64 --lengths 8/50,923/100 --repeat 1 --no-ceilings --kv-cache none,int8,fp8 \
            --json "$out/bench_kv.jsonl" >/dev/null 2>"$out/bench_kv.txt"
        echo "bench rc=$?"
        grep -E "^[a-z0-9-]+ +(none|int8|fp8) +[0-9]+ |error|duet bench" "$out/bench_kv.txt"
        ;;
    *)
        echo "unknown stage $stage (build, test, bench)"
        exit 2
        ;;
    esac
    echo "== stage $stage: $(($(date +%s) - t0)) s"
done
