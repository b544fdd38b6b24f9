#!/bin/bash
# scripts/gpu_tolerances.sh: measures what golden/tolerances' fp16/bf16 rows are set from: the gpu
# backend against every committed golden and a fresh ref golden of stories260K, every tap printed
# (bounds switched off), then the worst rel_l2 per tap kind and the logits' top-1 and KL.
# Usage on the GPU machine, after scripts/gpu_check.sh built /tmp/duet-build:
#   DUET_DATA=$PWD/.devdata bash scripts/gpu_tolerances.sh
set -u
duet=${DUET:-/tmp/duet-build/duet}
out=${OUT:-$PWD/gpu_tol_out}
tmp=$(mktemp -d)
mkdir -p "$out"
printf '%s\n' "* logits top1 0" "* logits kl 1e30" "* * rel_l2 1e30" >"$tmp/open"
for g in golden/*.fp32.safetensors; do
    n=$(basename "$g" .fp32.safetensors)
    "$duet" synth -o "$tmp/$n" --from-golden "$g" 2>/dev/null
    for mode in fp16 bf16; do
        "$duet" diff -m "$tmp/$n" "$g" --backend gpu --mode $mode --tolerances "$tmp/open" >"$out/$n.$mode.txt" 2>&1
    done
done
m="${DUET_DATA:-../shared/data}/stories260K"
if [ -d "$m" ]; then
    "$duet" golden -m "$m" -p "Once upon a time, there was a little dog" -o "$tmp/stories.safetensors" 2>/dev/null
    for mode in fp16 bf16; do
        "$duet" diff -m "$m" "$tmp/stories.safetensors" --backend gpu --mode $mode --tolerances "$tmp/open" \
            >"$out/stories260K.$mode.txt" 2>&1
    done
fi
# worst rel_l2 per (mode, tap kind) over all models, and the logits' rows
for mode in fp16 bf16; do
    cat "$out"/*.$mode.txt | awk -v mode=$mode '$1 ~ /^(embed|layers|final_norm|logits)/ {
        kind = $1; sub(/^layers\.[0-9]+\./, "", kind)
        if ($3 + 0 > worst[kind]) { worst[kind] = $3 + 0; at[kind] = FILENAME ":" $1 }
    } END { for (k in worst) printf "%s %-12s worst rel_l2 %.2e\n", mode, k, worst[k] }' | sort
    grep -h "^logits" "$out"/*.$mode.txt | sed "s/^/$mode /"
done
rm -rf "$tmp"
