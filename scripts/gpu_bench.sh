#!/bin/bash
# scripts/gpu_bench.sh: on the GPU machine, after scripts/gpu_check.sh has built duet in /tmp/duet-build:
# `duet bench` on the synthetic LLaMA-7B (batch 1, 8, 64; 8/50 and 923/100) against the Hugging Face
# baseline (scripts/hf_baseline.py) on the same shapes first, then `duet bench --hf-baseline` for the
# side-by-side table. Logs and JSON lines go to $OUT. Usage, from the source root:
#   DUET_DATA=$PWD/.devdata bash scripts/gpu_check.sh && bash scripts/gpu_bench.sh
# BENCH_ARGS / HF_ARGS add flags (e.g. BENCH_ARGS="--repeat 5"); SKIP_HF=1 skips the baseline (then a
# previous $HF_JSON is used if given).
set -u
out=${OUT:-$PWD/gpu_bench_out}
mkdir -p "$out"
src=$PWD
duet=/tmp/duet-build/duet
[ -x "$duet" ] || { echo "build duet first (scripts/gpu_check.sh)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader
export PYTHONUNBUFFERED=1
hf=${HF_JSON:-$out/hf_baseline.jsonl}
if [ "${SKIP_HF:-0}" != 1 ]; then
    rm -f "$hf"
    timeout ${HF_TIMEOUT:-400} python3 "$src/scripts/hf_baseline.py" ${HF_ARGS:-} --json "$hf" >"$out/hf_baseline.txt" 2>&1
    echo "hf_baseline rc=$?"; tail -12 "$out/hf_baseline.txt"
fi
hfarg=; [ -s "$hf" ] && hfarg="--hf-baseline $hf"
"$duet" bench ${BENCH_ARGS:-} $hfarg --json "$out/duet_bench.jsonl" 2>"$out/duet_bench.txt" >/dev/null
rc=$?; cat "$out/duet_bench.txt"; exit $rc
