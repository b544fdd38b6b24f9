#!/bin/sh
# test_cli_generate.sh: `duet generate` end to end on stories260K (skips without the shared data):
# greedy output equals llama2.c's published stories260K text, --help/unknown flags, prompt too long.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="$data/stories260K"

"$duet" generate --help >"$tmp/help" 2>&1
check "generate --help exits 0 and shows an example" grep -q "example" "$tmp/help"
"$duet" generate --no-such-flag >"$tmp/out" 2>&1; rc=$?
check "unknown flag exits 2" test "$rc" -eq 2
check "unknown flag is named" grep -q "no-such-flag" "$tmp/out"
"$duet" generate --batch-invariant maybe >"$tmp/out" 2>&1; rc=$?
check "--batch-invariant maybe exits 2 naming the value" sh -c "test $rc -eq 2 && grep -q \"'maybe' is not on or off\" '$tmp/out'"
"$duet" generate -m "$tmp/nowhere" -n 1 >"$tmp/out" 2>&1; rc=$?
check "missing model exits 1 naming it and \`make model\`" sh -c "test $rc -eq 1 && grep -q 'nowhere: no such model' '$tmp/out' && grep -q 'make model' '$tmp/out'"
mkdir "$tmp/empty"
"$duet" generate -m "$tmp/empty" -n 1 >"$tmp/out" 2>&1; rc=$?
check "a folder without config.json exits 1 naming config.json" sh -c "test $rc -eq 1 && grep -q 'empty/config.json' '$tmp/out'"

if [ ! -f "$model/model.safetensors" ]; then
    echo "SKIP: stories260K not found under $data"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi

# llama2.c's test_all.py expects exactly this from `run stories260K.bin -z tok512.bin -t 0.0 -n 200`
# (200 tokens printed after BOS), and so does duet with 200 new tokens.
cat >"$tmp/expected" <<'TXT'
Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find it."
Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
Lily didn't want to help her mom, so she
TXT
"$duet" generate -m "$model" -n 200 --temp 0 >"$tmp/got" 2>"$tmp/err"
check "greedy 200 tokens equal llama2.c's expected output" cmp -s "$tmp/got" "$tmp/expected"
check "throughput line on stderr" grep -q "decode: 200 tokens" "$tmp/err"
# The batch-invariant products (one sgemv per row) give llama2.c's text as well.
"$duet" generate -m "$model" -n 200 --temp 0 --batch-invariant on >"$tmp/got_inv" 2>/dev/null
check "--batch-invariant on: the same 200 greedy tokens" cmp -s "$tmp/got_inv" "$tmp/expected"
# 199 new tokens (HF max_new_tokens=199) stop one token earlier, after "so".
"$duet" generate -m "$model" -n 199 --temp 0 >"$tmp/got199" 2>/dev/null
check "199 tokens are the same text less the last token" sh -c "{ head -c -5 '$tmp/expected'; echo; } | cmp -s - '$tmp/got199'"

# The KV cache is sized to prompt + -n, not max_position_embeddings: the same model claiming 16M positions
# (20 GiB of KV cache at 1280 bytes a position) generates the same text under a 1 GiB address-space limit.
mkdir "$tmp/long"
cp "$model"/* "$tmp/long/"
sed 's/"max_position_embeddings": 512/"max_position_embeddings": 16777216/' "$model/config.json" >"$tmp/long/config.json"
(ulimit -v 1048576; OPENBLAS_NUM_THREADS=1 "$duet" generate -m "$tmp/long" -n 40 --temp 0 >"$tmp/long.txt" 2>"$tmp/long.err")
check "16M positions, -n 40, 1 GiB of address space: runs" test $? -eq 0
check "...and gives the 512-position model's text" sh -c "'$duet' generate -m '$model' -n 40 --temp 0 2>/dev/null | cmp -s - '$tmp/long.txt'"

# Seeded sampling is reproducible, and a different seed gives other text.
"$duet" generate -m "$model" -n 40 --temp 1 --top-p 0.9 --seed 7 >"$tmp/s1" 2>/dev/null
"$duet" generate -m "$model" -n 40 --temp 1 --top-p 0.9 --seed 7 >"$tmp/s2" 2>/dev/null
"$duet" generate -m "$model" -n 40 --temp 1 --top-p 0.9 --seed 8 >"$tmp/s3" 2>/dev/null
check "same seed, same text" cmp -s "$tmp/s1" "$tmp/s2"
check "other seed, other text" sh -c "! cmp -s '$tmp/s1' '$tmp/s3'"

# A prompt longer than max_position_embeddings (512) is a clear error.
long=$(yes "the cat sat on the mat." | head -n 200 | tr '\n' ' ')
"$duet" generate -m "$model" -p "$long" -n 1 >/dev/null 2>"$tmp/err"; rc=$?
check "prompt longer than the context exits 1" test "$rc" -eq 1
check "the error names both sizes" grep -q "longer than the model's 512 positions" "$tmp/err"
"$duet" generate -m "$model" --temp -1 >/dev/null 2>"$tmp/err"; rc=$?
check "negative temperature is a usage error naming the flag" sh -c "test $rc -eq 2 && grep -q -- '--temp' '$tmp/err'"
# The backend is checked before the model is loaded (and, with --weights, quantized): an unknown name and,
# on a build without CUDA, --backend gpu fail at once, naming the backend, whatever -m holds.
for cmd in generate chat eval; do
    "$duet" $cmd -m "$tmp/no-such-model" --backend foo --weights int4 </dev/null >/dev/null 2>"$tmp/err"; rc=$?
    check "$cmd --backend foo: exit 1 naming it, before the model" sh -c \
        "test $rc -eq 1 && grep -q \"unknown backend 'foo'\" '$tmp/err' && ! grep -q no-such-model '$tmp/err'"
done
"$duet" generate -m "$tmp/no-such-model" --backend gpu --weights int4 >/dev/null 2>"$tmp/err"; rc=$?
if grep -q "not built" "$tmp/err"; then
    check "generate --backend gpu without CUDA: exit 1 before the model" sh -c \
        "test $rc -eq 1 && ! grep -q no-such-model '$tmp/err'"
fi
exit $fail
