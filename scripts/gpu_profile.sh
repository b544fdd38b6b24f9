#!/bin/bash
# scripts/gpu_profile.sh: Nsight Compute (ncu) profile of decode steps of the synthetic LLaMA-7B, on the
# GPU machine after scripts/gpu_check.sh has built duet in /tmp/duet-build. Profiles every kernel of
# the decode steps (graph replay; ncu serializes kernels, so PDL overlap and launch gaps are not in it; caches are
# not flushed between kernels) and prints a
# per-kernel-kind table: count, summed duration, DRAM bytes and DRAM throughput as % of peak, from
# scripts/ncu_summary.py. Logs and the raw CSV go to $OUT.
#   PROFILE_ARGS: extra `duet bench` flags (default: batch 1, 8 in / 3 out: a warm-up and one timed run,
#   each an 8-token prefill and 2 decode steps); NCU_SKIP, NCU_COUNT: matching kernels to skip and to
#   profile (default 0 and 2000: all of them; divide the decode kernels by the 4 steps).
set -u
out=${OUT:-$PWD/gpu_profile_out}
mkdir -p "$out"
src=$PWD
duet=/tmp/duet-build/duet
[ -x "$duet" ] || { echo "build duet first (scripts/gpu_check.sh)"; exit 1; }
command -v ncu >/dev/null || { echo "ncu not found"; exit 77; }
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__registers_per_thread
# decode-step kernels only (not the weight fill, cuBLAS prefill or prefill attention)
kre='regex:^(gemv|attn_decode|attn_merge|rope_kv|add_rmsnorm|embedding|argmax|advance|sample)'
timeout ${NCU_TIMEOUT:-400} ncu --clock-control none --cache-control none --metrics "$metrics" --csv --page raw --print-units base \
    --kernel-name "$kre" --launch-skip "${NCU_SKIP:-0}" --launch-count "${NCU_COUNT:-2000}" \
    "$duet" bench --no-ceilings --repeat 1 ${PROFILE_ARGS:--b 1 -l 8/3} >"$out/ncu_raw.csv" 2>"$out/ncu_stderr.txt"
echo "ncu rc=$?"
grep -v '^==PROF==' "$out/ncu_stderr.txt" | tail -5
python3 "$src/scripts/ncu_summary.py" "$out/ncu_raw.csv" | tee "$out/ncu_summary.txt"
