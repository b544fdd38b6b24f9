#!/bin/sh
# test_cli_bench.sh: `duet bench` as a user meets it: --help, bad flags and values (an unknown --weights
# mode refused before the backend is looked for), a missing or malformed --hf-baseline file, and a tiny
# run (JSON lines on a GPU; a clear "no CUDA device" / "not built" error and exit 1 without one); -m misuse.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"

"$duet" bench --help >"$tmp/h"; check "--help exits 0 with an example" grep -q "example" "$tmp/h"
"$duet" bench --bogus >/dev/null 2>&1; check "unknown flag exits 2" test $? -eq 2
"$duet" bench --batch 0 >/dev/null 2>"$tmp/e"; rc=$?
check "--batch 0: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- '--batch' '$tmp/e'"
"$duet" bench --lengths 5 >/dev/null 2>"$tmp/e"; rc=$?
check "--lengths without IN/OUT: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- '--lengths' '$tmp/e'"
# --weights: a mode that is not one is refused (exit 2, naming it and listing the modes) while the flags are
# read, before the gpu backend is looked for (so also on a build without CUDA)
for list in bogus int8,bogus; do
    "$duet" bench --model-shape tiny --weights $list >/dev/null 2>"$tmp/e"; rc=$?
    check "--weights $list: exit 2 naming 'bogus' and the modes, not the backend" sh -c \
        "test $rc -eq 2 && grep -q \"^duet bench: --weights: unknown weight quantization mode 'bogus' (modes: none, int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1)\" '$tmp/e' && ! grep -q -e 'not built' -e 'CUDA' '$tmp/e'"
done
"$duet" bench --model-shape tiny --weights , >/dev/null 2>"$tmp/e"; rc=$?
check "--weights ',': exit 2, an empty list" sh -c "test $rc -eq 2 && grep -q -- '--weights: empty list' '$tmp/e'"
# --w8a8: an unknown mode is refused naming the modes; with -m or --weights it is refused (a model's W8A8
# needs its calibration; the seeded codes replace the layer matrices)
"$duet" bench --model-shape tiny --w8a8 bogus >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 bogus: exit 2 naming the modes" sh -c "test $rc -eq 2 && grep -q -- '--w8a8: .*bogus' '$tmp/e' && grep -q fp8-tensor '$tmp/e'"
"$duet" bench --model-shape tiny --w8a8 fp8 --weights int8 >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 with --weights int8: exit 2" sh -c "test $rc -eq 2 && grep -q -- '--w8a8 times seeded W8A8 layers' '$tmp/e'"
"$duet" bench -m "$tmp/none.gguf" --w8a8 sq >/dev/null 2>"$tmp/e"; rc=$?
check "--w8a8 with -m: exit 2" sh -c "test $rc -eq 2 && grep -q -- 'without -m' '$tmp/e'"
"$duet" bench --model-shape tiny --hf-baseline "$tmp/none.jsonl" >/dev/null 2>"$tmp/e"; rc=$?
check "missing --hf-baseline file: exit 1 naming it" sh -c "test $rc -eq 1 && grep -q none.jsonl '$tmp/e'"
printf '{"impl": "hf-transformers", "batch": 1\n' >"$tmp/bad.jsonl"
"$duet" bench --model-shape tiny --hf-baseline "$tmp/bad.jsonl" >/dev/null 2>"$tmp/e"; rc=$?
check "malformed --hf-baseline line: exit 1 naming the file" sh -c "test $rc -eq 1 && grep -q bad.jsonl '$tmp/e'"
# -m: a model file instead of the synthetic shapes; the shape flags are refused with it, a missing file is
# named, lengths beyond the model's positions are refused (all before the backend is looked for)
"$duet" bench -m "$tmp/none.gguf" >/dev/null 2>"$tmp/e"; rc=$?
check "-m with a missing file: exit 1 naming it" sh -c "test $rc -eq 1 && grep -q none.gguf '$tmp/e'"
stories="$data/stories260K"
if [ -d "$stories" ]; then
    "$duet" bench -m "$stories" --dim 64 >/dev/null 2>"$tmp/e"; rc=$?
    check "-m with --dim: exit 2, the shape flags are for the synthetic model" sh -c \
        "test $rc -eq 2 && grep -q 'describe the synthetic model' '$tmp/e'"
    "$duet" bench -m "$stories" --lengths 500/100 >/dev/null 2>"$tmp/e"; rc=$?
    check "-m with --lengths beyond the model's 512 positions: exit 2 naming both" sh -c \
        "test $rc -eq 2 && grep -q -- '--lengths 500/100: 600 positions, more than .*stories260K.s 512' '$tmp/e'"
fi

"$duet" bench --model-shape tiny --batch 2 --lengths 4/3 --repeat 1 --no-ceilings >"$tmp/out" 2>"$tmp/e"; rc=$?
if grep -q -e "no CUDA device" -e "not built" "$tmp/e"; then
    check "without a GPU: exit 1 with the reason" test $rc -eq 1
else
    check "tiny bench runs" test $rc -eq 0
    check "one JSON object for the case on stdout" \
        sh -c "test \$(grep -c '\"impl\": \"duet\"' '$tmp/out') -eq 1 && grep -q decode_ms_per_token '$tmp/out'"
fi
exit $fail
