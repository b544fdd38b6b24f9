#!/bin/sh
# test_cli_calibrate.sh: `duet calibrate` as a user meets it: --help, bad flags and values, and a run on
# stories260K (two cnn_dailymail items, 32 tokens each) whose file holds every layer's arrays with the
# model's lengths, finite and >= 0, some of them > 0; then that file as the scales of `duet generate
# --kv-cache int8|fp8`, and the flags' errors (one without the other, an unknown mode, another model's
# file); `--w8a8 sq` (SmoothQuant W8A8) from the same file on generate, eval and `diff --cost`, and its
# flags' errors. The run is skipped (77) without the shared data.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"

"$duet" calibrate --help >"$tmp/h"; check "--help exits 0 with an example" grep -q "example" "$tmp/h"
"$duet" calibrate --bogus >/dev/null 2>&1; check "unknown flag exits 2" test $? -eq 2
"$duet" calibrate --items 9-3 >/dev/null 2>"$tmp/e"; rc=$?
check "--items 9-3: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- \"--items: '9-3'\" '$tmp/e'"
"$duet" calibrate --max-tokens 0 >/dev/null 2>"$tmp/e"; rc=$?
check "--max-tokens 0: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--max-tokens' '$tmp/e'"
"$duet" calibrate --backend tpu >/dev/null 2>"$tmp/e"; rc=$?
check "--backend tpu: exit 1 naming it" sh -c "test $rc -eq 1 && grep -q \"unknown backend 'tpu'\" '$tmp/e'"

model="$data/stories260K"
items="$data/cnn_dailymail/test_100.jsonl"
if [ ! -d "$model" ] || [ ! -f "$items" ]; then echo "SKIP: no stories260K or cnn_dailymail data"; [ $fail -eq 0 ] && exit 77; exit 1; fi
"$duet" calibrate -m "$model" --data "$items" --items 200-201 -o "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--items beyond the file: exit 1 naming the count" sh -c "test $rc -eq 1 && grep -q 'has 100 items' '$tmp/e'"
"$duet" calibrate -m "$model" --data "$items" --items 50-51 --max-tokens 32 --threads 2 -o "$tmp/c.json" \
    >/dev/null 2>"$tmp/e"; rc=$?
check "a two-item run: exit 0" test $rc -eq 0
check "it reports 2 prompts, 64 tokens" grep -q "2 prompts, 64 tokens" "$tmp/e"
check "the file holds every layer with the model's lengths" python3 -c "
import json, math, sys
c = json.load(open('$tmp/c.json')); cfg = json.load(open('$model/config.json'))
D, F, L, H = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_hidden_layers'], cfg['num_attention_heads']
Hk = cfg.get('num_key_value_heads', H)
assert c['format'] == 'duet-calibration' and c['version'] == 1 and c['samples'] == 2 and c['tokens'] == 64
assert c['model']['dim'] == D and c['model']['n_layers'] == L and len(c['layers']) == L
want = {'qkv_in': D, 'o_in': D, 'gate_up_in': D, 'down_in': F, 'k': Hk, 'v': Hk}
for l in c['layers']:
    for k, n in want.items():
        assert len(l[k]) == n, (k, len(l[k]), n)
        assert all(math.isfinite(x) and x >= 0 for x in l[k]), k
        assert max(l[k]) > 0, k
"
for kv in int8 fp8; do
    "$duet" generate -m "$model" -n 16 --temp 0 --kv-cache $kv --calib "$tmp/c.json" >"$tmp/g_$kv" 2>"$tmp/e"; rc=$?
    check "generate --kv-cache $kv --calib: exit 0 with text" sh -c "test $rc -eq 0 && test -s '$tmp/g_$kv'"
done
"$duet" generate -m "$model" -n 4 --kv-cache int8 >/dev/null 2>"$tmp/e"; rc=$?
check "--kv-cache int8 without --calib: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --calib FILE' '$tmp/e'"
"$duet" generate -m "$model" -n 4 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--calib without a mode: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --kv-cache int8|fp8 or --w8a8 sq|fp8|fp8-tensor' '$tmp/e'"
"$duet" generate -m "$model" -n 4 --kv-cache fp4 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--kv-cache fp4: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'fp4' unknown\" '$tmp/e'"
synth="$tmp/other"
"$duet" synth -o "$synth" >/dev/null 2>&1 && cp "$model/tokenizer.json" "$model/tokenizer_config.json" "$synth/" # 2 layers, not 5
"$duet" generate -m "$synth" -n 4 --kv-cache int8 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "another model's calibration file: exit 1 naming the field" sh -c "test $rc -eq 1 && grep -q 'another model' '$tmp/e'"
"$duet" eval -m "$model" --data "$items" -n 1 --max-input 64 --max-output 8 --kv-cache int8 >/dev/null 2>"$tmp/e"; rc=$?
check "eval --kv-cache int8 without --calib: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --calib FILE' '$tmp/e'"
# SmoothQuant W8A8 (calib/w8a8.h) from the same file, alone and with a quantized KV cache
"$duet" generate -m "$model" -n 16 --temp 0 --w8a8 sq --calib "$tmp/c.json" >"$tmp/g_sq" 2>"$tmp/e"; rc=$?
check "generate --w8a8 sq --calib: exit 0 with text, saying so" \
    sh -c "test $rc -eq 0 && test -s '$tmp/g_sq' && grep -q 'SmoothQuant W8A8 (alpha 0.50' '$tmp/e'"
"$duet" generate -m "$model" -n 8 --temp 0 --w8a8 sq --sq-alpha 0.8 --kv-cache fp8 --calib "$tmp/c.json" \
    >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 sq --sq-alpha 0.8 --kv-cache fp8: exit 0" sh -c "test $rc -eq 0 && grep -q 'alpha 0.80' '$tmp/e'"
"$duet" generate -m "$model" -n 4 --w8a8 sq >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 sq without --calib: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --calib FILE' '$tmp/e'"
"$duet" generate -m "$model" -n 4 --w8a8 int4 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 int4: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'int4' unknown (expected none, sq, fp8 or fp8-tensor)\" '$tmp/e'"
for w in fp8 fp8-tensor; do
    "$duet" generate -m "$model" -n 8 --temp 0 --w8a8 $w --calib "$tmp/c.json" >"$tmp/g_$w" 2>"$tmp/e"; rc=$?
    check "generate --w8a8 $w: exit 0 with text, saying so" \
        sh -c "test $rc -eq 0 && test -s '$tmp/g_$w' && grep -q 'FP8 E4M3 W8A8 ($w:' '$tmp/e'"
done
"$duet" generate -m "$model" -n 4 --w8a8 sq --sq-alpha 1.5 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--sq-alpha 1.5: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--sq-alpha: expected a number in \[0, 1\]' '$tmp/e'"
"$duet" generate -m "$model" -n 4 --sq-alpha 0.5 --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--sq-alpha without --w8a8 sq: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --w8a8 sq' '$tmp/e'"
"$duet" generate -m "$synth" -n 4 --w8a8 sq --calib "$tmp/c.json" >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 sq with another model's file: exit 1" sh -c "test $rc -eq 1 && grep -q 'another model' '$tmp/e'"
"$duet" eval -m "$model" --data "$items" -n 1 --max-input 64 --max-output 8 --w8a8 sq --calib "$tmp/c.json" \
    --json "$tmp/ev.json" >/dev/null 2>"$tmp/e"; rc=$?
check "eval --w8a8 sq: exit 0, the JSON naming the mode" python3 -c "
import json; j = json.load(open('$tmp/ev.json'))
assert $rc == 0 and j['w8a8'] == 'sq' and j['sq_alpha'] == 0.5 and j['kv_cache'] == 'none', j.get('w8a8')"
# the modes' accuracy cost per tap against the fp32 golden (duet diff --cost)
"$duet" golden -m "$model" --ids 1,400,99,7,250,31,12,300 -o "$tmp/g.safetensors" 2>/dev/null
for q in "--w8a8 sq" "--w8a8 fp8" "--w8a8 fp8-tensor" "--kv-cache int8" "--w8a8 fp8 --kv-cache fp8"; do
    "$duet" diff -m "$model" "$tmp/g.safetensors" $q --calib "$tmp/c.json" --cost >"$tmp/cost" 2>&1; rc=$?
    check "diff $q --cost: exit 0, every tap reported" sh -c \
        "test $rc -eq 0 && grep -q '^all [0-9]* taps within tolerance (mode fp32:[a-z0-9.+-]* cost, no bounds' '$tmp/cost'"
    printf '  %-26s logits rel_l2 %s\n' "$q" "$(awk '$1 == "logits" { print $3 }' "$tmp/cost")"
done
"$duet" diff -m "$model" "$tmp/g.safetensors" --w8a8 sq --calib "$tmp/c.json" >"$tmp/e" 2>&1; rc=$?
check "diff --w8a8 sq against an uncalibrated golden without --cost: exit 2" sh -c \
    "test $rc -eq 2 && grep -q \"made in calibrated mode 'none', this run is 'w8a8-sq-a0.50'\" '$tmp/e'"
# goldens of the ref in a calibrated mode, and diff in that mode against them (rows fp32:NAME)
for q in "--kv-cache fp8" "--w8a8 sq --sq-alpha 0.6" "--w8a8 fp8 --kv-cache int8"; do
    "$duet" golden -m "$model" --ids 1,400,99,7,250,31,12,300 $q --calib "$tmp/c.json" -o "$tmp/gq.safetensors" \
        2>/dev/null
    "$duet" diff -m "$model" "$tmp/gq.safetensors" $q --calib "$tmp/c.json" >"$tmp/d" 2>&1; rc=$?
    check "golden + diff $q: exit 0, every tap within the fp32 rows" sh -c \
        "test $rc -eq 0 && grep -q '^all [0-9]* taps within tolerance (mode fp32:[a-z0-9.+-]*, ' '$tmp/d'"
done
"$duet" golden -m "$model" --ids 1,400,99,7 --kv-cache fp8 --calib "$tmp/c.json" -o "$tmp/gk.safetensors" 2>/dev/null
"$duet" diff -m "$model" "$tmp/gk.safetensors" --kv-cache int8 --calib "$tmp/c.json" >"$tmp/e" 2>&1; rc=$?
check "diff --kv-cache int8 against a kv-fp8 golden: exit 2, both named" sh -c \
    "test $rc -eq 2 && grep -q \"made in calibrated mode 'kv-fp8', this run is 'kv-int8'\" '$tmp/e'"
"$duet" diff -m "$model" "$tmp/gk.safetensors" >"$tmp/e" 2>&1; rc=$?
check "diff without the mode against a kv-fp8 golden: exit 2" sh -c \
    "test $rc -eq 2 && grep -q \"made in calibrated mode 'kv-fp8', this run is 'none'\" '$tmp/e'"
"$duet" diff -m "$model" "$tmp/gk.safetensors" --kv-cache fp8 --calib "$tmp/c.json" --cost >"$tmp/e" 2>&1; rc=$?
check "diff --cost against a calibrated golden: exit 2" sh -c "test $rc -eq 2 && grep -q 'uncalibrated golden' '$tmp/e'"
"$duet" golden -m "$model" --ids 1,2 --kv-cache fp8 -o "$tmp/x.safetensors" >"$tmp/e" 2>&1; rc=$?
check "golden --kv-cache without --calib: exit 2" sh -c "test $rc -eq 2 && grep -q 'give --calib FILE' '$tmp/e'"
exit $fail
