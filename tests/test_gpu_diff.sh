#!/bin/sh
# test_gpu_diff.sh: `duet diff --backend gpu` against every committed golden (fp16 and bf16, bounds
# from golden/tolerances) and against a fresh ref golden of stories260K; with DUET_PERTURB breaking one
# kernel, diff names that op's tap as the first failure (SmoothQuant W8A8's products too, against a golden of
# the ref in that mode); `duet generate` sampling on the GPU prints the
# text sampling on the host prints. Exits 77 without a GPU (or a CUDA build).
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
tol="$src/golden/tolerances"

"$duet" synth -o "$tmp/probe" --layers 1 2>/dev/null
if ! "$duet" golden -m "$tmp/probe" --ids 1,2 --backend gpu --mode fp16 -o "$tmp/probe.safetensors" 2>"$tmp/why"; then
    if grep -q -e "no CUDA device" -e "not built" "$tmp/why"; then
        echo "SKIP: no GPU backend here: $(cat "$tmp/why")"
        exit 77
    fi
    check "a gpu golden of a tiny model runs" false
    cat "$tmp/why"
fi

# diff_both NAME MODEL GOLDEN: the gpu backend in fp16 and bf16 against GOLDEN, every tap in tolerance
diff_both() {
    for mode in fp16 bf16; do
        "$duet" diff -m "$2" "$3" --backend gpu --mode "$mode" --tolerances "$tol" >"$tmp/out" 2>&1
        rc=$?
        check "$1 gpu $mode: every tap within golden/tolerances" test $rc -eq 0
        [ $rc -eq 0 ] || cat "$tmp/out"
        tail -1 "$tmp/out"
    done
}

for g in "$src"/golden/*.fp32.safetensors; do
    name=$(basename "$g" .fp32.safetensors)
    "$duet" synth -o "$tmp/$name" --from-golden "$g" 2>/dev/null
    check "$name: synth --from-golden exits 0" test $? -eq 0
    diff_both "$name" "$tmp/$name" "$g"
done

g="$src/golden/mha.p7.fp32.safetensors"
DUET_PERTURB=swiglu "$duet" diff -m "$tmp/mha.p7" "$g" --backend gpu --mode fp16 --tolerances "$tol" >"$tmp/out" 2>&1
rc=$?
check "DUET_PERTURB=swiglu: exit 1" test $rc -eq 1
check "DUET_PERTURB=swiglu: first failure is layers.0.act" grep -q "first: layers.0.act$" "$tmp/out"
DUET_PERTURB=rmsnorm "$duet" diff -m "$tmp/mha.p7" "$g" --backend gpu --mode bf16 --tolerances "$tol" >"$tmp/out" 2>&1
rc=$?
check "DUET_PERTURB=rmsnorm: exit 1" test $rc -eq 1
check "DUET_PERTURB=rmsnorm: first failure is layers.0.attn_norm" grep -q "first: layers.0.attn_norm$" "$tmp/out"

model="$data/stories260K"
if [ -f "$model/model.safetensors" ]; then
    "$duet" golden -m "$model" -p "Once upon a time, there was a little dog" -o "$tmp/stories.safetensors" 2>/dev/null
    check "stories260K: the ref golden exits 0" test $? -eq 0
    diff_both stories260K "$model" "$tmp/stories.safetensors"
    # sampling on the GPU (device decode in graph chunks) prints what sampling on the host prints
    for dt in fp16 bf16; do
        set -- -m "$model" -n 120 --temp 0.9 --top-k 50 --top-p 0.95 --seed 3 --ignore-eos --backend gpu --dtype $dt
        # both runs must succeed before their texts mean anything (two failures print the same nothing)
        "$duet" generate "$@" >"$tmp/dev.txt" 2>"$tmp/dev.err"
        rc_dev=$?
        "$duet" generate "$@" --host-sampling >"$tmp/host.txt" 2>"$tmp/host.err"
        rc_host=$?
        check "generate gpu $dt, device sampling: exit 0" test $rc_dev -eq 0
        check "generate gpu $dt, --host-sampling: exit 0" test $rc_host -eq 0
        [ $rc_dev -eq 0 ] && [ $rc_host -eq 0 ] || cat "$tmp/dev.err" "$tmp/host.err"
        check "generate gpu $dt --temp 0.9 --top-k 50 --top-p 0.95: GPU sampling = host sampling" cmp -s "$tmp/dev.txt" "$tmp/host.txt"
    done
    # SmoothQuant W8A8 on the gpu against the ref's golden in the mode (rows fp16:w8a8-sq-*), calibrated on
    # two articles; DUET_PERTURB=w8a8 (every W8A8 product broken) names layers.0.q first
    items="$data/cnn_dailymail/test_100.jsonl"
    if [ -f "$items" ]; then
        c="$tmp/stories.calib.json"
        "$duet" calibrate -m "$model" --data "$items" --items 50-51 --max-tokens 64 -o "$c" >/dev/null 2>&1
        check "stories260K: calibrate (2 items) exits 0" test $? -eq 0
        "$duet" golden -m "$model" --ids 1,400,99,7,250,31,12,300 --w8a8 sq --calib "$c" -o "$tmp/st.sq.safetensors" 2>/dev/null
        check "stories260K: the ref golden in W8A8 sq exits 0" test $? -eq 0
        "$duet" diff -m "$model" "$tmp/st.sq.safetensors" --backend gpu --mode fp16 --w8a8 sq --calib "$c" \
            --tolerances "$tol" >"$tmp/out" 2>&1
        rc=$?
        check "stories260K w8a8 sq gpu fp16: every tap within the fp16:w8a8-sq-* rows" test $rc -eq 0
        [ $rc -eq 0 ] || cat "$tmp/out"
        tail -1 "$tmp/out"
        DUET_PERTURB=w8a8 "$duet" diff -m "$model" "$tmp/st.sq.safetensors" --backend gpu --mode fp16 --w8a8 sq \
            --calib "$c" --tolerances "$tol" >"$tmp/out" 2>&1
        rc=$?
        check "w8a8 sq DUET_PERTURB=w8a8: exit 1" test $rc -eq 1
        check "w8a8 sq DUET_PERTURB=w8a8: first failure is layers.0.q" grep -q "first: layers.0.q$" "$tmp/out"
    fi
else
    echo "(stories260K not found under $data: its diff is not run)"
fi

# Weight-only quantized modes: the gpu backend with --weights MODE against the ref's golden in the same
# mode (rows DTYPE:MODE of golden/tolerances), prefills of 40 tokens (dequantize + cuBLAS), 12 (the
# tensor-core qmma) and 2 (the GEMV); DUET_PERTURB=qgemm (the quantized products broken) fails at the first
# one, layers.0.q.
"$duet" synth -o "$tmp/qsynth" --dim 256 --ffn 768 --layers 2 --heads 4 --kv-heads 2 --head-dim 64 --vocab 512 2>/dev/null
check "quantized modes: a synthetic model (D 256, F 768) exits 0" test $? -eq 0
for w in int8 int4 int4-g128 int4-g64 q8_0 q4_0 q4_1; do
    for ids in $(seq -s, 3 7 282) 5,17,99,3,250,41,7,300,12,1,88,64 9,33; do
        "$duet" golden -m "$tmp/qsynth" --ids "$ids" --weights $w -o "$tmp/q.$w.safetensors" 2>"$tmp/why"
        check "$w: the ref golden in the mode exits 0" test $? -eq 0 || cat "$tmp/why"
        for mode in fp16 bf16; do
            "$duet" diff -m "$tmp/qsynth" "$tmp/q.$w.safetensors" --backend gpu --mode $mode --weights $w \
                --tolerances "$tol" >"$tmp/out" 2>&1
            rc=$?
            check "$w gpu $mode ($(echo $ids | tr ',' ' ' | wc -w) tokens): every tap within the $mode:$w rows" test $rc -eq 0
            [ $rc -eq 0 ] || cat "$tmp/out"
            tail -1 "$tmp/out"
        done
    done
    DUET_PERTURB=qgemm "$duet" diff -m "$tmp/qsynth" "$tmp/q.$w.safetensors" --backend gpu --mode fp16 --weights $w \
        --tolerances "$tol" >"$tmp/out" 2>&1
    rc=$?
    check "$w DUET_PERTURB=qgemm: exit 1" test $rc -eq 1
    check "$w DUET_PERTURB=qgemm: first failure is layers.0.q" grep -q "first: layers.0.q$" "$tmp/out"
done
"$duet" diff -m "$tmp/qsynth" "$tmp/q.q4_1.safetensors" --backend gpu --weights q8_0 >"$tmp/out" 2>&1
check "a golden of another mode than --weights: exit 2 naming both" sh -c "test $? -eq 2 && grep -q \"weights 'q4_1', not 'q8_0'\" '$tmp/out'"

# The default model (SmolLM2-135M-Instruct, Q4_1/Q8_0 GGUF, run natively: weight-only kernels): every tap of a ChatML
# prompt within golden/tolerances, and --chat on the GPU answers as the ref does.
smol="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$smol" ]; then
    chat=$(printf '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in one sentence, then name two famous landmarks there.<|im_end|>\n<|im_start|>assistant\n')
    ids=$("$duet" tokenize -m "$smol" --parse-special -p "$chat")
    "$duet" golden -m "$smol" --ids "$ids" -o "$tmp/smollm2.safetensors" 2>/dev/null
    check "SmolLM2: the ref golden exits 0" test $? -eq 0
    diff_both SmolLM2 "$smol" "$tmp/smollm2.safetensors"
    "$duet" generate -m "$smol" --chat -p "What is the capital of France?" --temp 0 -n 32 >"$tmp/ref.txt" 2>/dev/null
    for dt in fp16 bf16; do
        "$duet" generate -m "$smol" --chat -p "What is the capital of France?" --temp 0 -n 32 --backend gpu --dtype $dt \
            >"$tmp/gpu.txt" 2>/dev/null
        check "SmolLM2 generate --chat gpu $dt: exit 0, same answer as the ref" sh -c "test $? -eq 0 && cmp -s '$tmp/ref.txt' '$tmp/gpu.txt'"
    done
else
    echo "(the default model is not at $smol: its diff is not run)"
fi
exit $fail
