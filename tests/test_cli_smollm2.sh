#!/bin/sh
# test_cli_smollm2.sh: the README's main job on the default model (SmolLM2-135M-Instruct Q4_1 GGUF,
# `make model`): `duet generate --chat` answers a question sensibly on the CPU, the model is found
# without -m, and the chat/model errors are clear. Skips (77) without the model.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

# Without -m, $DUET_MODEL and models/: the message says how to get the model.
if [ ! -e "$(dirname "$duet")/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    abs_duet="$(cd "$(dirname "$duet")" && pwd)/duet"
    (cd "$tmp" && env -u DUET_MODEL "$abs_duet" generate -p hi -n 1 >"$tmp/out" 2>&1); rc=$?
    check "no model anywhere: exit 2 saying run \`make model\` or give -m" sh -c "test $rc -eq 2 && grep -q 'make model' '$tmp/out' && grep -q -- '-m' '$tmp/out'"
fi
"$duet" generate --system "be brief" -p hi >"$tmp/out" 2>&1; rc=$?
check "--system without --chat exits 2" test "$rc" -eq 2
printf 'GGUF\003\000\000\000' >"$tmp/bad.gguf"
"$duet" generate -m "$tmp/bad.gguf" -p hi -n 1 >"$tmp/out" 2>&1; rc=$?
check "a truncated GGUF exits 1 naming the file" sh -c "test $rc -eq 1 && grep -q 'bad.gguf' '$tmp/out'"
if [ -f "$data/stories260K/config.json" ]; then
    "$duet" synth -o "$tmp/v100" --vocab 100 --layers 1 >/dev/null 2>&1
    cp "$data/stories260K/tokenizer.json" "$tmp/v100/"
    "$duet" generate -m "$tmp/v100" -p hi -n 1 >"$tmp/out" 2>&1; rc=$?
    check "a tokenizer with more ids than the model's vocabulary is refused at load" sh -c "test $rc -eq 1 && grep -q 'tokenizer has 512 ids but the model.s vocabulary is 100' '$tmp/out'"
    "$duet" generate -m "$data/stories260K" --chat -p hi -n 1 >"$tmp/out" 2>&1; rc=$?
    check "--chat on a model without a chat template exits 1 saying so" sh -c "test $rc -eq 1 && grep -q 'no chat template' '$tmp/out'"
fi

if [ ! -f "$model" ]; then
    echo "SKIP: the default model is not at $model (run \`make model\`)"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi
"$duet" generate -m "$model" --chat -p "What is the capital of France?" --temp 0 -n 32 >"$tmp/paris" 2>"$tmp/err"; rc=$?
cat "$tmp/paris"
check "generate --chat: 'What is the capital of France?' -> an answer naming Paris" sh -c "test $rc -eq 0 && grep -q Paris '$tmp/paris'"
check "the startup line says how the weights are held" grep -q "weights stored as Q8_0, F32, Q4_1" "$tmp/err"
check "the chat answer does not echo the template" sh -c "! grep -q 'im_start' '$tmp/paris'"
DUET_MODEL="$model" "$duet" generate --chat -p "What is 2 + 2?" --temp 0 -n 16 >"$tmp/four" 2>/dev/null; rc=$?
cat "$tmp/four"
check "DUET_MODEL is the default model; 'What is 2 + 2?' -> 4" sh -c "test $rc -eq 0 && grep -q 4 '$tmp/four'"
"$duet" generate -m "$model" --chat --system "" -p "Say hello." --temp 0 -n 8 >/dev/null 2>&1; rc=$?
check "--system '' (no system turn) runs" test "$rc" -eq 0
[ $fail -eq 0 ]
