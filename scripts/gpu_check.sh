#!/bin/bash
# scripts/gpu_check.sh: on a GPU machine (the lent device), build duet out of tree, run `make check`
# (the GPU suites run for real there), then compare `duet generate` text on stories260K between the
# ref and the gpu backend in fp16 and bf16. Logs go to $OUT (or ./gpu_check_out). Usage, from the
# source root: DUET_DATA=$PWD/.devdata scripts/gpu_check.sh
# The lent device gets only the checkout: first, here, `mkdir -p .devdata && cp -r ../shared/data/stories260K
# ../shared/data/cnn_dailymail .devdata/` and make .debs as scripts/device_env.sh says (both are ignored by
# git), then pass carry [".debs", ".devdata"] to the device call.
set -u
out=${OUT:-$PWD/gpu_check_out}
mkdir -p "$out"
src=$PWD
[ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }
mkdir -p /tmp/duet-build && cd /tmp/duet-build
"$src"/configure -q >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
make -j16 >/tmp/build.log 2>&1 || { grep -E "error|Error" /tmp/build.log | head -30; exit 1; }
make -j16 check >/tmp/check.log 2>&1
grep -E "^(PASS|FAIL|SKIP|ERROR|XFAIL)|^# " /tmp/check.log
for t in tests/test_gpu_ops tests/test_gpu_model; do
    cp "$t.log" "$out/$(basename $t).txt" 2>/dev/null
    echo "== $t"; grep -E "worst|greedy|agreement|prefill|absurd|FAIL|Failures|Checks|rel_l2 .* FAIL|packed" "$t.log" | head -60
done
m="${DUET_DATA:-$src/../shared/data}/stories260K"
if [ -d "$m" ]; then
    ./duet generate -m "$m" -n 199 --temp 0 --ignore-eos --backend ref >"$out/gen_ref.txt" 2>/tmp/gen_ref.err
    for dt in fp16 bf16; do
        ./duet generate -m "$m" -n 199 --temp 0 --ignore-eos --backend gpu --dtype $dt >"$out/gen_$dt.txt" 2>/tmp/gen_$dt.err; tail -1 /tmp/gen_$dt.err
        if cmp -s "$out/gen_ref.txt" "$out/gen_$dt.txt"; then echo "generate gpu $dt: same text as ref";
        else echo "generate gpu $dt: DIFFERS from ref"; diff "$out/gen_ref.txt" "$out/gen_$dt.txt" | head -5; fi
    done
    ./duet generate -m "$m" -n 10 --backend gpu --dtype fp32 >/dev/null 2>/tmp/gen_fp32.err; echo "fp32 on gpu: rc=$? $(cat /tmp/gen_fp32.err)"
fi
