#!/bin/sh
# test_cli_quantize.sh: `duet quantize` and --weights on the command line: --help, usage errors (exit 2:
# an unknown mode named with the list of modes, no -o, no --weights), refusals (exit 1: OUT exists, a
# row length the mode does not fit, named: a synthetic model of K = 200, needing no data, in every blocked
# mode and through duet golden --weights); on stories260K (int8, int4) and the default model (every mode
# that fits it; int4-g128 does not: K = 576): the output reloads and `duet generate --backend ref` on it
# gives the text of `--weights MODE` on the source (the same codes), quantizing twice gives identical
# files, and, when the `gguf` Python package is installed, tests/gguf_dequant_check.py: gguf-py's
# dequantization of each GGUF output equals duet's values bit for bit and gguf-py's quantizer gives
# duet's blocks. Skips (77) when neither model is present.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"

"$duet" quantize --help >"$tmp/help" 2>&1; rc=$?
check "--help exits 0 listing every mode" sh -c "test $rc -eq 0 && grep -q 'int4-g64' '$tmp/help' && grep -q 'q4_1' '$tmp/help' && grep -q 'examples:' '$tmp/help'"
"$duet" quantize --weights int3 -o "$tmp/x" >"$tmp/out" 2>&1; rc=$?
check "an unknown mode exits 2 naming it and listing the modes" sh -c \
    "test $rc -eq 2 && grep -q \"'int3' is not a mode\" '$tmp/out' && grep -q 'int8, int4, int4-g128, int4-g64, q8_0, q4_0, q4_1' '$tmp/out'"
"$duet" quantize --weights int8 >"$tmp/out" 2>&1; rc=$?
check "no -o exits 2" sh -c "test $rc -eq 2 && grep -q 'need -o OUT' '$tmp/out'"
"$duet" quantize -o "$tmp/x" >"$tmp/out" 2>&1; rc=$?
check "no --weights exits 2" sh -c "test $rc -eq 2 && grep -q 'need --weights MODE' '$tmp/out'"
"$duet" generate --weights q5_k -n 1 >"$tmp/out" 2>&1; rc=$?
check "generate --weights with an unknown mode exits 2" sh -c "test $rc -eq 2 && grep -q \"'q5_k' is not a mode\" '$tmp/out'"
# K not a multiple of the mode's block or group, with no data needed: a synthetic model of ffn 200 (down_proj
# K = 200): each blocked mode is refused naming the tensor, its group and K, and leaves no output; the
# ref's --weights path (duet golden) refuses it the same way
"$duet" synth -o "$tmp/k200" --dim 128 --ffn 200 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --vocab 64 2>/dev/null
check "synth (ffn 200) exits 0" test $? -eq 0
for wg in q8_0:32 q4_0:32 q4_1:32 int4-g64:64 int4-g128:128; do
    w=${wg%:*} g=${wg#*:}
    case $w in q*) out="$tmp/k200-$w.gguf";; *) out="$tmp/k200-$w";; esac
    "$duet" quantize -m "$tmp/k200" --weights $w -o "$out" >"$tmp/out" 2>&1; rc=$?
    check "$w on a model with K = 200: exit 1 naming down_proj, the group of $g and K, no output" sh -c \
        "test $rc -eq 1 && grep -q \"model.layers.0.mlp.down_proj.weight': mode $w needs rows whose length is a multiple of its group of $g (K = 200)\" '$tmp/out' && test ! -e '$out'"
done
"$duet" golden -m "$tmp/k200" --weights q4_0 --ids 1,2,3 -o "$tmp/k200.g" >"$tmp/out" 2>&1; rc=$?
check "golden --weights q4_0 on K = 200: exit 1 naming the mode, tensor and K" sh -c \
    "test $rc -eq 1 && grep -q \"^duet golden: --weights q4_0: .*down_proj.weight'.*(K = 200)\" '$tmp/out' && test ! -e '$tmp/k200.g'"
"$duet" golden -m "$tmp/k200" --weights int4 --ids 1,2,3 -o "$tmp/k200.g" >"$tmp/out" 2>&1
check "per-row int4 fits K = 200 (golden --weights int4 exits 0)" sh -c "test $? -eq 0 && test -s '$tmp/k200.g'"
for c in generate chat eval golden diff; do
    "$duet" $c --help >"$tmp/h" 2>&1
    check "$c --help mentions --weights" grep -q -- "--weights MODE" "$tmp/h"
done

have_gguf=0
if python3 -c "import gguf, numpy" 2>/dev/null; then have_gguf=1; else echo "SKIP: python3 cannot import gguf: the gguf-py checks do not run"; fi

# gen MODEL [ARGS...]: greedy text of a fixed prompt into stdout (ref backend)
gen() { m=$1; shift; "$duet" generate --backend ref -m "$m" -p "Once upon a time" -n 12 --temp 0 "$@" 2>/dev/null; }

ran=0
stories="$data/stories260K"
if [ -f "$stories/config.json" ]; then
    ran=1
    for w in int8 int4; do
        "$duet" quantize -m "$stories" --weights $w -o "$tmp/s-$w" >"$tmp/out" 2>"$tmp/err"; rc=$?
        check "stories260K $w: exit 0, progress and sizes on stderr" sh -c \
            "test $rc -eq 0 && test ! -s '$tmp/out' && grep -q 'layer 5/5' '$tmp/err' && grep -q 'wrote .*MiB' '$tmp/err'"
        check "stories260K $w: an HF folder with the tokenizer" sh -c \
            "test -f '$tmp/s-$w/config.json' && cmp -s '$stories/tokenizer.json' '$tmp/s-$w/tokenizer.json' && cmp -s '$stories/tokenizer_config.json' '$tmp/s-$w/tokenizer_config.json'"
        gen "$tmp/s-$w" >"$tmp/a"; gen "$stories" --weights $w >"$tmp/b"
        check "stories260K $w: the output generates the text of --weights $w on the source" sh -c "test -s '$tmp/a' && cmp -s '$tmp/a' '$tmp/b'"
        "$duet" quantize -q -m "$stories" --weights $w -o "$tmp/s2-$w" 2>/dev/null
        check "stories260K $w: quantizing twice gives identical files" sh -c \
            "cmp '$tmp/s-$w/model.safetensors' '$tmp/s2-$w/model.safetensors' && cmp '$tmp/s-$w/config.json' '$tmp/s2-$w/config.json'"
    done
    "$duet" generate -m "$stories" --weights int4 -n 1 >/dev/null 2>"$tmp/err"
    check "the ref's startup line says the mode" grep -q "ref: fp32; weights int4 (quantized on load), dequantized to fp32 exactly" "$tmp/err"
    "$duet" generate -m "$tmp/s-int4" -n 1 >/dev/null 2>"$tmp/err"
    check "a planar folder's startup line says it is stored so" grep -q "weights stored as F32, QU4 (linear weights int4)" "$tmp/err"
    "$duet" quantize -m "$stories" --weights int8 -o "$tmp/s-int8" >"$tmp/out" 2>&1; rc=$?
    check "an existing OUT is refused without --force" sh -c "test $rc -eq 1 && grep -q 'already exists' '$tmp/out'"
    "$duet" quantize -q --force -m "$tmp/s-int4" --weights int8 -o "$tmp/s-int8" >"$tmp/out" 2>&1; rc=$?
    check "--force replaces it; a quantized folder requantizes" sh -c "test $rc -eq 0 && '$duet' generate -m '$tmp/s-int8' -n 2 >/dev/null 2>&1"
    "$duet" quantize -m "$stories" --weights q4_0 -o "$tmp/s.gguf" >"$tmp/out" 2>&1; rc=$?
    check "q4_0 on stories260K (down_proj K = 172, not a multiple of 32): exit 1 naming the tensor" sh -c \
        "test $rc -eq 1 && grep -q \"model.layers.0.mlp.down_proj.weight'.*q4_0.*group of 32 (K = 172)\" '$tmp/out' && test ! -e '$tmp/s.gguf'"
    "$duet" generate -m "$stories" --weights int4-g64 -n 1 >"$tmp/out" 2>&1; rc=$?
    check "--weights int4-g64 on stories260K (K = 172) fails naming the tensor" sh -c "test $rc -eq 1 && grep -q 'down_proj.*K = 172' '$tmp/out'"
fi

model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$model" ]; then
    ran=1
    "$duet" quantize -m "$model" --weights int4-g128 -o "$tmp/m-g128" >"$tmp/out" 2>&1; rc=$?
    check "int4-g128 on the default model (K = 576): exit 1 naming the tensor" sh -c \
        "test $rc -eq 1 && grep -q \"blk.0.attn_q.weight'.*int4-g128.*group of 128 (K = 576)\" '$tmp/out'"
    for w in int8 int4 int4-g64 q8_0 q4_0 q4_1; do
        case $w in q*) out="$tmp/m-$w.gguf";; *) out="$tmp/m-$w";; esac
        "$duet" quantize -q -m "$model" --weights $w -o "$out" 2>"$tmp/err"; rc=$?
        check "default model $w: exit 0" test $rc -eq 0
        sed -n 's/^duet quantize: wrote /  /p' "$tmp/err"
        gen "$out" >"$tmp/a"; gen "$model" --weights $w >"$tmp/b"
        check "default model $w: the output generates the text of --weights $w on the source" sh -c "test -s '$tmp/a' && cmp -s '$tmp/a' '$tmp/b'"
    done
    "$duet" quantize -q -m "$model" --weights q4_0 -o "$tmp/m2-q4_0.gguf" 2>/dev/null
    check "default model q4_0: quantizing twice gives identical files" cmp "$tmp/m-q4_0.gguf" "$tmp/m2-q4_0.gguf"
    "$duet" quantize -q -m "$model" --weights int4-g64 -o "$tmp/m2-int4-g64" 2>/dev/null
    check "default model int4-g64: quantizing twice gives identical files" cmp "$tmp/m-int4-g64/model.safetensors" "$tmp/m2-int4-g64/model.safetensors"
    "$duet" quantize -q -m "$tmp/m-int4-g64" --weights q4_0 -o "$tmp/m-g64-q4_0.gguf" 2>/dev/null; rc=$?
    gen "$tmp/m-g64-q4_0.gguf" >"$tmp/a"
    check "a planar folder requantizes to a GGUF that runs" sh -c "test $rc -eq 0 && test -s '$tmp/a'"
    "$duet" generate -m "$tmp/m-q4_0.gguf" -n 1 >/dev/null 2>"$tmp/err"
    check "the q4_0 GGUF's startup line says its mode" grep -q "weights stored as Q8_0, F32, Q4_0 (linear weights q4_0)" "$tmp/err"
    if [ $have_gguf -eq 1 ]; then
        "$duet" convert -q "$model" "$tmp/src-hf" 2>/dev/null
        for w in q8_0 q4_0 q4_1; do
            "$duet" convert -q "$tmp/m-$w.gguf" "$tmp/d-$w" 2>/dev/null
            python3 "$src/tests/gguf_dequant_check.py" "$tmp/m-$w.gguf" "$tmp/d-$w" --source "$tmp/src-hf" >"$tmp/py" 2>&1; rc=$?
            sed 's/^/  /' "$tmp/py"
            check "default model $w: gguf-py dequantizes duet's GGUF to duet's values and quantizes the source to its blocks" test $rc -eq 0
            rm -rf "$tmp/d-$w"
        done
    fi
fi
if [ $ran -eq 0 ]; then
    echo "SKIP: neither $stories nor $model is present"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi
exit $fail
