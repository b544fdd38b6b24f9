#!/bin/sh
# test_cli_convert.sh: `duet convert` on the command line: --help, usage errors (exit 2: unknown
# --type, missing OUT), refusals (exit 1 naming the problem: OUT exists without --force, IN not a
# model), progress on stderr, and stories260K HF -> GGUF -> HF generating the same text as the
# original folder. Skips (77) without the shared stories260K.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"

"$duet" convert --help >"$tmp/help" 2>&1; rc=$?
check "--help exits 0 with examples" sh -c "test $rc -eq 0 && grep -q 'examples:' '$tmp/help' && grep -q -- '--type' '$tmp/help'"
"$duet" convert a b --type q4_1 >"$tmp/out" 2>&1; rc=$?
check "unknown --type exits 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'q4_1'\" '$tmp/out' && grep -q 'f32, f16 or bf16' '$tmp/out'"
"$duet" convert onlyone >"$tmp/out" 2>&1; rc=$?
check "missing OUT exits 2" test "$rc" -eq 2
echo hello >"$tmp/notes.txt"
"$duet" convert "$tmp/notes.txt" "$tmp/x.gguf" >"$tmp/out" 2>&1; rc=$?
check "a text file is not a model: exit 1 naming it" sh -c "test $rc -eq 1 && grep -q 'notes.txt: not a model' '$tmp/out'"

stories="$data/stories260K"
if [ ! -f "$stories/config.json" ]; then
    echo "SKIP: $stories is absent"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi
"$duet" convert "$stories" "$tmp/s.gguf" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "HF -> GGUF exits 0, progress on stderr, nothing on stdout" sh -c "test $rc -eq 0 && test ! -s '$tmp/out' && grep -q 'tensor 47/47' '$tmp/err' && grep -q 'wrote' '$tmp/err'"
"$duet" convert "$stories" "$tmp/s.gguf" >"$tmp/out" 2>&1; rc=$?
check "an existing OUT is refused without --force" sh -c "test $rc -eq 1 && grep -q 'already exists' '$tmp/out' && grep -q -- '--force' '$tmp/out'"
"$duet" convert -q --force "$stories" "$tmp/s.gguf" >"$tmp/out" 2>&1; rc=$?
check "--force replaces it (-q: quiet)" sh -c "test $rc -eq 0 && test ! -s '$tmp/out'"
"$duet" convert -q "$tmp/s.gguf" "$tmp/back" 2>"$tmp/err"; rc=$?
check "GGUF -> HF folder exits 0" sh -c "test $rc -eq 0 && test -f '$tmp/back/model.safetensors' && test -f '$tmp/back/tokenizer.json'"
for m in "$stories" "$tmp/s.gguf" "$tmp/back"; do
    "$duet" generate -m "$m" -p "Once upon a time" -n 24 --temp 0 2>/dev/null >"$tmp/gen.$(basename "$m")"
done
check "the HF folder, its GGUF and the folder made back generate the same text" sh -c \
    "test -s '$tmp/gen.stories260K' && cmp -s '$tmp/gen.stories260K' '$tmp/gen.s.gguf' && cmp -s '$tmp/gen.stories260K' '$tmp/gen.back'"
"$duet" tokenize -m "$tmp/s.gguf" -p "Once upon a  time" >"$tmp/t1"; "$duet" tokenize -m "$stories" -p "Once upon a  time" >"$tmp/t2"
check "the GGUF's tokenizer gives tokenizer.json's ids" cmp -s "$tmp/t1" "$tmp/t2"
exit $fail
