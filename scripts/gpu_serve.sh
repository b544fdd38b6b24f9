#!/bin/bash
# scripts/gpu_serve.sh: in-flight batching on the lent GPU machine, in stages (one device call each, back
# to back while the machine stays warm; /tmp survives between them):
#   build      scripts/gpu_quant.sh's build (duet and the test programs with CUDA in /tmp/duet-build)
#   test       the scheduler's GPU suites: tests/test_gpu_sched (device draws, streams under both policies,
#              batch-invariant streams, 1,000 random schedules of 64 greedy requests), test_gpu_ops (the
#              attention kernels), test_cli_bench_serve.sh (the synthetic model's run)
#   saturated  128/128 on the synthetic LLaMA-7B, all requests at time 0, at 256 / 384 / 512 slots
#   rates      the mixed-length stream at 4-64 requests/s, in flight and static ($OUT/rates.jsonl)
#   invariant  batch-invariant on against off at 64 slots, 128/128 saturated: the cost in tok/s
#   fp8        128/128 saturated in FP8 W8A8 + fp8 KV cache (seeded codes, placeholder scales) at 256 and 512
#              slots, and fp16 at 512 beside it (issue 11's 30,000 tok/s)
# Everything lands in $OUT (*.txt tables, *.jsonl lines); the summary lines are printed.
# usage, from the source root, carry [".debs", ".devdata" (with llama2-tokenizer/tokenizer.json)]:
#   bash scripts/gpu_serve.sh build test saturated   (then: rates invariant)
set -u
out=${OUT:-$PWD/gpu_serve_out}
mkdir -p "$out"
src=$PWD
b=/tmp/duet-build
export DUET_DATA=${DUET_DATA:-$src/.devdata}
[ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
sat() { # NAME SLOTS BUDGET REQUESTS [FLAGS...]
    local name=$1 slots=$2 budget=$3 n=$4
    shift 4
    timeout 120 $b/duet bench --serve --backend gpu --model-shape 7b -n "$n" --max-input 128 --max-tokens 128 \
        --max-seqs "$slots" --token-budget "$budget" --rates 0 --no-static "$@" --json "$out/$name.jsonl" \
        >/dev/null 2>"$out/$name.txt"
    echo "$name (slots $slots, budget $budget, $n requests $*) rc=$?"
    grep -E "^in-flight" "$out/$name.txt"
}
for stage in "$@"; do
    t0=$(date +%s)
    echo "== stage $stage"
    case $stage in
    build)
        bash scripts/gpu_quant.sh build || exit 1
        ;;
    test)
        (cd $b && make -j16 check TESTS="tests/test_gpu_sched tests/test_gpu_ops tests/test_cli_bench_serve.sh" \
            >/tmp/check_serve.log 2>&1)
        grep -E "^(PASS|FAIL|SKIP|ERROR)" /tmp/check_serve.log
        for t in test_gpu_sched test_gpu_ops test_cli_bench_serve.sh; do cp $b/tests/$t.log "$out/" 2>/dev/null; done
        grep -hE "^#|Checks|FAIL" "$out/test_gpu_sched.log" "$out/test_cli_bench_serve.sh.log" 2>/dev/null | head -20
        ;;
    saturated)
        sat sat256 256 4096 512
        sat sat384 384 4096 768
        sat sat512 512 8192 1024
        ;;
    rates)
        timeout 400 $b/duet bench --serve --backend gpu --model-shape 7b -n 96 --max-input 512 \
            --max-tokens 32,64,128,256 --max-seqs 64 --token-budget 2048 --rates 4,8,16,32,64 \
            --json "$out/rates.jsonl" >/dev/null 2>"$out/rates.txt"
        echo "rates rc=$?"
        grep -E "^(mode|in-flight|static)" "$out/rates.txt"
        ;;
    invariant)
        sat inv_off 64 4096 256 --batch-invariant off
        sat inv_on 64 4096 256 --batch-invariant on
        ;;
    fp8)
        sat fp8_256 256 4096 512 --w8a8 fp8 --kv-cache fp8
        sat fp8_512 512 8192 1024 --w8a8 fp8 --kv-cache fp8
        sat f16_512 512 8192 1024
        ;;
    *)
        echo "unknown stage '$stage' (build, test, saturated, rates, invariant, fp8)"
        exit 2
        ;;
    esac
    echo "== stage $stage: $(($(date +%s) - t0)) s"
done
