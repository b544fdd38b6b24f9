#!/bin/sh
# test_cli_cost.sh: `duet diff --weights MODE --cost`, the accuracy cost of each weight-only mode: the ref
# in the mode against the unquantized fp32 golden of the same model, every tap reported and none failed
# for its size; the 8-bit modes cost less than the 4-bit ones; misuse is refused (--cost without
# --weights or against a quantized golden; the ref with --weights against a golden of another mode, or
# without --weights against a quantized one; the gpu backend on a build without it). Needs no data (a
# synthetic model whose sizes every mode takes: D 256, F 768).
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
"$duet" synth -o "$tmp/m" --dim 256 --ffn 768 --layers 2 --heads 4 --kv-heads 2 --head-dim 64 --vocab 512 2>/dev/null
check "synth exits 0" test $? -eq 0
"$duet" golden -m "$tmp/m" --ids 5,17,99,3,250,41,7,300,12,1 -o "$tmp/g.safetensors" 2>/dev/null
check "the fp32 golden exits 0" test $? -eq 0
for w in int8 int4 int4-g128 int4-g64 q8_0 q4_0 q4_1; do
    "$duet" diff -m "$tmp/m" "$tmp/g.safetensors" --weights $w --cost >"$tmp/$w.txt" 2>&1
    rc=$?
    check "$w --cost: exit 0 (reported, not failed)" test $rc -eq 0
    [ $rc -eq 0 ] || cat "$tmp/$w.txt"
    check "$w --cost: all 33 taps reported" grep -q "^all 33 taps within tolerance (mode fp32:$w cost, no bounds" "$tmp/$w.txt"
    awk '$1 == "logits" { print $3 }' "$tmp/$w.txt" >"$tmp/$w.logits"
    printf '  %-10s logits rel_l2 %s, worst tap %s\n' $w "$(cat "$tmp/$w.logits")" \
        "$(awk 'NF >= 6 && $3 ~ /e/ && $3 + 0 > m { m = $3 + 0; t = $1 } END { print t, m }' "$tmp/$w.txt")"
done
# rel_l2 of the logits: 8-bit below 4-bit, per channel and in blocks
lt() { awk -v a="$(cat "$1")" -v b="$(cat "$2")" 'BEGIN { exit !(a + 0 < b + 0) }'; }
check "int8 costs less than int4 (logits)" lt "$tmp/int8.logits" "$tmp/int4.logits"
check "q8_0 costs less than q4_0 (logits)" lt "$tmp/q8_0.logits" "$tmp/q4_0.logits"
check "int4-g64 costs less than per-channel int4 (logits)" lt "$tmp/int4-g64.logits" "$tmp/int4.logits"
"$duet" diff -m "$tmp/m" "$tmp/g.safetensors" --cost >"$tmp/out" 2>&1
check "--cost without --weights: exit 2" test $? -eq 2
"$duet" golden -m "$tmp/m" --ids 5,17,99 --weights q4_1 -o "$tmp/gq.safetensors" 2>/dev/null
"$duet" diff -m "$tmp/m" "$tmp/gq.safetensors" --weights q4_1 --cost >"$tmp/out" 2>&1
check "--cost against a quantized golden: exit 2 naming its weights" sh -c "test $? -eq 2 && grep -q \"weights 'q4_1'\" '$tmp/out'"
# the ref against a golden of another mode than the run's: refused before the run (exit 2) naming both
"$duet" diff -m "$tmp/m" "$tmp/gq.safetensors" --weights q8_0 >"$tmp/out" 2>&1; rc=$?
check "ref --weights q8_0 against a q4_1 golden: exit 2 naming both modes" sh -c \
    "test $rc -eq 2 && grep -q \"gq.safetensors was made with weights 'q4_1', not 'q8_0': make the golden with \\\`duet golden --weights q8_0\\\`\" '$tmp/out' && ! grep -q taps '$tmp/out'"
"$duet" diff -m "$tmp/m" "$tmp/g.safetensors" --weights int8 >"$tmp/out" 2>&1; rc=$?
check "ref --weights int8 against the fp32 golden (no --cost): exit 2 naming 'none' and 'int8'" sh -c \
    "test $rc -eq 2 && grep -q \"g.safetensors was made with weights 'none', not 'int8'\" '$tmp/out'"
"$duet" diff -m "$tmp/m" "$tmp/gq.safetensors" >"$tmp/out" 2>&1; rc=$?
check "no --weights against a q4_1 golden of an fp32 model: exit 2 naming both, not 31 taps out" sh -c \
    "test $rc -eq 2 && grep -q \"gq.safetensors was made with weights 'q4_1', but $tmp/m's linear weights are 'none' as stored: pass --weights q4_1\" '$tmp/out' && ! grep -q taps '$tmp/out'"
"$duet" diff -m "$tmp/m" "$tmp/gq.safetensors" --weights q4_1 >"$tmp/out" 2>&1; rc=$?
check "ref --weights q4_1 against its own golden: exit 0" sh -c "test $rc -eq 0 && grep -q '^all 33 taps within tolerance (mode fp32:q4_1' '$tmp/out'"
# a backend without the mode: the gpu backend on a build without CUDA, with --weights, says it is not built
# (exit 2, nothing run); on a CUDA build tests/test_gpu_diff.sh runs the modes
"$duet" diff -m "$tmp/m" "$tmp/gq.safetensors" --backend gpu --weights q4_1 >"$tmp/out" 2>&1; rc=$?
if grep -q "not built" "$tmp/out"; then
    check "--backend gpu --weights q4_1 without CUDA: exit 2, the backend named not built" sh -c \
        "test $rc -eq 2 && grep -q \"^duet diff: backend 'gpu' is not built: this build has no CUDA backend\" '$tmp/out' && ! grep -q taps '$tmp/out'"
fi
exit $fail
