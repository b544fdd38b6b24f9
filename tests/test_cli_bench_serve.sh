#!/bin/sh
# test_cli_bench_serve.sh: `duet bench --serve` as a user meets it: --help, bad flags and values, and a tiny
# request stream on the default model's ref backend (in-flight and static rows, JSON lines with the fields
# the README names). The run is skipped (77) without the default model or the cnn_dailymail data.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"

"$duet" bench --serve --help >"$tmp/h"; check "--help exits 0 with an example" grep -q "example" "$tmp/h"
"$duet" bench --serve --bogus >/dev/null 2>&1; check "unknown flag exits 2" test $? -eq 2
"$duet" bench --serve --policy lru >/dev/null 2>"$tmp/e"; rc=$?
check "--policy lru: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q 'lru' '$tmp/e'"
"$duet" bench --serve --rates 1,x >/dev/null 2>"$tmp/e"; rc=$?
check "--rates 1,x: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- '--rates' '$tmp/e'"
"$duet" bench --serve --max-seqs 8 --token-budget 4 >/dev/null 2>"$tmp/e"; rc=$?
check "--token-budget below --max-seqs: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--token-budget 4' '$tmp/e'"
"$duet" bench --serve --kv-budget 1.5 >/dev/null 2>"$tmp/e"; rc=$?
check "--kv-budget 1.5: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- \"--kv-budget: '1.5'\" '$tmp/e'"
"$duet" bench --serve --kv-budget 12X >/dev/null 2>&1; check "--kv-budget 12X: exit 2" test $? -eq 2
"$duet" bench --serve --backend tpu >/dev/null 2>"$tmp/e"; rc=$?
check "--backend tpu: exit 1 naming it" sh -c "test $rc -eq 1 && grep -q \"unknown backend 'tpu'\" '$tmp/e'"
"$duet" bench --serve --batch-invariant maybe >/dev/null 2>"$tmp/e"; rc=$?
check "--batch-invariant maybe: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'maybe' is not on or off\" '$tmp/e'"
"$duet" bench --serve --model-shape 7b >/dev/null 2>"$tmp/e"; rc=$?
check "--model-shape on the ref: exit 2 asking for --backend gpu" sh -c "test $rc -eq 2 && grep -q -- '--backend gpu' '$tmp/e'"
"$duet" bench --serve --model-shape 13b >/dev/null 2>"$tmp/e"; rc=$?
check "--model-shape 13b: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'13b' unknown\" '$tmp/e'"
"$duet" bench --serve --model-shape tiny -m x.gguf --backend gpu >/dev/null 2>"$tmp/e"; rc=$?
check "--model-shape with -m: exit 2" sh -c "test $rc -eq 2 && grep -q 'not with -m x.gguf' '$tmp/e'"
"$duet" bench --serve --weights int8 >/dev/null 2>"$tmp/e"; rc=$?
check "--weights without --model-shape: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--weights is for the synthetic' '$tmp/e'"
"$duet" bench --serve --model-shape tiny --backend gpu --weights int3 >/dev/null 2>"$tmp/e"; rc=$?
check "--weights int3: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q 'int3' '$tmp/e'"
# --w8a8 / --kv-cache: seeded codes and placeholder scales of the synthetic model only
"$duet" bench --serve --w8a8 fp8 >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 without --model-shape: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--w8a8 is for the synthetic' '$tmp/e'"
"$duet" bench --serve --kv-cache fp8 >/dev/null 2>"$tmp/e"; rc=$?
check "--kv-cache without --model-shape: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--kv-cache is for the synthetic' '$tmp/e'"
"$duet" bench --serve --model-shape tiny --backend gpu --w8a8 fp9 >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 fp9: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q 'fp9' '$tmp/e'"
"$duet" bench --serve --model-shape tiny --backend gpu --kv-cache int4 >/dev/null 2>"$tmp/e"; rc=$?
check "--kv-cache int4: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q 'int4' '$tmp/e'"
"$duet" bench --serve --model-shape tiny --backend gpu --w8a8 sq --weights q4_0 >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 with --weights: exit 2" sh -c "test $rc -eq 2 && grep -q 'replaces the layer matrices' '$tmp/e'"

# the synthetic model on the gpu backend (tiny shape, Llama-2 tokenizer), where this build has CUDA and a device
items="$data/cnn_dailymail/test_100.jsonl"
if [ -f "$items" ] && [ -f "$data/llama2-tokenizer/tokenizer.json" ]; then
    "$duet" bench --serve --backend gpu --model-shape tiny --tokenizer "$data/llama2-tokenizer" --data "$items" -n 6 \
        --max-input 32 --max-tokens 4,8 --max-seqs 4 --token-budget 64 --rates 0,50 >"$tmp/g" 2>"$tmp/ge"; rc=$?
    if [ $rc -ne 0 ] && grep -qE "not built|no CUDA device" "$tmp/ge"; then
        echo "# the gpu synthetic run is skipped: $(tail -1 "$tmp/ge")"
    else
        check "--model-shape tiny on the gpu: exit 0" test $rc -eq 0
        check "--model-shape tiny: four JSON lines naming the synthetic model" sh -c \
            "test \$(grep -c '\"model\":\"synthetic tiny\"' '$tmp/g') -eq 4"
        check "--model-shape tiny: every request generated (4 or 8 tokens each)" sh -c \
            "grep -o '\"generated\":[0-9]*' '$tmp/g' | cut -d: -f2 | awk '{ n++ } \$1 < 24 || \$1 > 48 { bad = 1 } END { exit bad || n != 4 }'"
        # the same stream in SmoothQuant W8A8 with an int8 KV cache (seeded codes, placeholder scales)
        "$duet" bench --serve --backend gpu --model-shape tiny --tokenizer "$data/llama2-tokenizer" --data "$items" \
            -n 6 --max-input 32 --max-tokens 4,8 --max-seqs 4 --token-budget 64 --no-static --w8a8 sq --kv-cache int8 \
            >"$tmp/g8" 2>"$tmp/ge8"; rc=$?
        check "--model-shape tiny --w8a8 sq --kv-cache int8 on the gpu: exit 0, the modes in the JSON" sh -c \
            "test $rc -eq 0 && grep -q '\"w8a8\":\"sq\"' '$tmp/g8' && grep -q '\"kv_cache\":\"int8\"' '$tmp/g8'"
    fi
fi

model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
items="$data/cnn_dailymail/test_100.jsonl"
if [ ! -f "$model" ] || [ ! -f "$items" ]; then echo "SKIP: no default model or cnn_dailymail data"; [ $fail -eq 0 ] && exit 77; exit 1; fi
"$duet" bench --serve -m "$model" --data "$items" -n 3 --max-input 8 --max-tokens 2,3 --max-seqs 2 --threads 2 \
    --json "$tmp/j" >"$tmp/o" 2>"$tmp/e"; rc=$?
check "a tiny stream runs (exit 0)" test $rc -eq 0
check "two JSON lines, in-flight and static" sh -c "test \$(wc -l <'$tmp/o') -eq 2 && grep -q '\"mode\":\"in-flight\"' '$tmp/o' && grep -q '\"mode\":\"static\"' '$tmp/o'"
check "--json FILE holds the same lines" cmp "$tmp/o" "$tmp/j"
check "the ref runs batch-invariant by default" sh -c "test \$(grep -c '\"batch_invariant\":\"on\"' '$tmp/o') -eq 2"
# --kv-budget 4M on SmolLM2-135M (blocks of 2 x 30 layers x 16 positions x 3 x 64 x 4 bytes = 737280): 5 blocks,
# under the 2 x ceil(66 / 16) = 10 of both slots full at 64 + 2 positions
"$duet" bench --serve -m "$model" --data "$items" -n 2 --max-input 64 --max-tokens 2 --max-seqs 2 --threads 2 \
    --no-static --kv-budget 4M >"$tmp/o2" 2>"$tmp/e2"; rc=$?
check "--kv-budget 4M: the pool holds 5 blocks" sh -c "test $rc -eq 0 && grep -q '\"kv_blocks\":5,' '$tmp/o2'"
for f in tok_s ttft_p50_s ttft_p99_s itl_p50_s itl_p99_s e2e_p99_s peak_kv_blocks preemptions generated steps step_ms sched_host_ms; do
    check "JSON has $f" grep -q "\"$f\":" "$tmp/o"
done
exit $fail
