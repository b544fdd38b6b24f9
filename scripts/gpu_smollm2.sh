#!/bin/bash
# scripts/gpu_smollm2.sh: the default model's checks on the GPU machine, in stages (one device call
# each, back to back while the machine stays warm; /tmp survives between them):
#   build   unpack .debs (scripts/device_env.sh), install the carried wheels (.whl/: gguf) into
#           /tmp/site, build duet with CUDA in /tmp/duet-build; keeps a first model half in /tmp
#   hf      join the model halves (/tmp half + .mpart/), make the prompt ids and the ref's eval runs
#           with duet, then run scripts/hf_smollm2_reference.py (HF transformers on the same GGUF);
#           results to $OUT
#   gpu     make check (GPU suites run), duet diff --backend gpu on SmolLM2 with open bounds (what
#           golden/tolerances' SmolLM2 rows are set from), generate --chat on the GPU, and the eval
#           runs of gpu fp16/bf16 with both prompts; results to $OUT/gpu_smollm2.tar.gz
#   regen   HF's states and greedy files again from tests/data/hf/smollm2_prompts.json, then
#           test_smollm2 and test_gpu_diff.sh
# usage, from the source root: DUET_DATA=$PWD/.devdata bash scripts/gpu_smollm2.sh build|hf|gpu|regen
set -u
stage=${1:?usage: gpu_smollm2.sh build|hf|gpu|regen}
out=${OUT:-$PWD/gpu_smollm2_out}
mkdir -p "$out"
src=$PWD
b=/tmp/duet-build
model=/tmp/smollm2.gguf
export DUET_DATA=${DUET_DATA:-$src/.devdata}
[ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
if [ -d /tmp/site ]; then export PYTHONPATH=/tmp/site; fi
export PYTHONUNBUFFERED=1
case $stage in
build)
    for p in .mpart/*.part00; do [ -f "$p" ] && cp "$p" /tmp/; done
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }
    mkdir -p $b && cd $b
    "$src"/configure -q >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
    make -j16 >/tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -30; exit 1; }
    make -j16 check TESTS= >/tmp/build_tests.log 2>&1 || { grep -E "error" /tmp/build_tests.log | head; exit 1; }
    ls -la $b/duet /tmp/*.part00
    ;;
hf)
    cat /tmp/smollm2.part00 .mpart/smollm2.part01 >$model
    sha256sum $model
    d=$b/duet
    chat=$'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n'
    {
        echo '['
        echo "{\"name\": \"short\", \"ids\": $($d tokenize -m $model -p 'The quick brown fox')},"
        echo "{\"name\": \"chatml\", \"ids\": $($d tokenize -m $model --parse-special -p "$chat")},"
        echo "{\"name\": \"code\", \"ids\": $($d tokenize -m $model -p $'def fibonacci(n):\n    if n < 2:\n        return n\n')},"
        echo "{\"name\": \"digits\", \"ids\": $($d tokenize -m $model -p "In 2024, the town's population was 1234567; that's 12.5% more than in 1999.")}"
        echo ']'
    } >"$out/prompts.json"
    cat "$out/prompts.json"
    $d eval -m $model -n 20 --json "$out/ref_summarize.json" 2>&1 | tail -12
    $d eval -m $model -n 20 --prompt chat --json "$out/ref_chat.json" 2>&1 | tail -12
    python3 scripts/hf_smollm2_reference.py --gguf $model --prompts "$out/prompts.json" --eval "$out/ref_summarize.json" \
        --out "$out" 2>&1 | grep -v Warning | tail -30
    python3 scripts/hf_smollm2_reference.py --gguf $model --prompts "$out/prompts.json" --eval "$out/ref_chat.json" \
        --eval-out smollm2_summaries_chat.json --out /tmp/hf_chat 2>&1 | tail -3
    cp /tmp/hf_chat/smollm2_summaries_chat.json "$out/"
    ;;
gpu)
    final_out=$out
    out=/tmp/gpu_out
    mkdir -p $out
    trap 'tar -C /tmp -czf "$final_out/gpu_smollm2.tar.gz" gpu_out' EXIT
    [ -f $model ] || cat /tmp/smollm2.part00 .mpart/smollm2.part01 >$model
    cd $b
    export DUET_MODEL=$model
    make -j16 >/tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -30; exit 1; }
    make -j16 check >/tmp/check.log 2>&1
    grep -E "^(PASS|FAIL|SKIP|ERROR)|^Check:" /tmp/check.log
    for t in tests/test_smollm2 tests/test_gpu_ops tests/test_gpu_model tests/test_cli_smollm2.sh tests/test_gpu_diff.sh; do
        cp "$t.log" "$out/$(basename $t).log" 2>/dev/null
    done
    grep -h -E "rel_l2|greedy|summaries|FAIL" tests/test_smollm2.log | head -20
    printf '%s\n' "* logits top1 0" "* logits kl 1e30" "* * rel_l2 1e30" >/tmp/open
    chat=$'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in one sentence, then name two famous landmarks there.<|im_end|>\n<|im_start|>assistant\n'
    ./duet golden -m $model -p "$chat" -o /tmp/smollm2.golden.safetensors 2>&1 | tail -1
    for mode in fp16 bf16; do
        ./duet diff -m $model /tmp/smollm2.golden.safetensors --backend gpu --mode $mode --tolerances /tmp/open \
            >"$out/diff_smollm2.$mode.txt" 2>&1
        sort -g -k3 "$out/diff_smollm2.$mode.txt" | tail -3
        ./duet diff -m $model /tmp/smollm2.golden.safetensors --backend gpu --mode $mode | tail -1
    done
    for dt in fp16 bf16; do
        ./duet generate -m $model --chat -p "What is the capital of France?" --temp 0 -n 32 --backend gpu --dtype $dt 2>&1
    done
    ./duet generate -m $model --chat -p "What is the capital of France?" --temp 0 -n 32 2>&1
    for p in summarize chat; do
        for dt in fp16 bf16; do
            ./duet eval -m $model -n 20 --prompt $p --backend gpu --dtype $dt --json "$out/gpu_${p}_$dt.json" 2>&1 | tail -9
        done
    done
    ;;
regen)
    # the HF states and greedy files again (into tests/data/hf), then test_smollm2 and test_gpu_diff.sh
    [ -f $model ] || cat /tmp/smollm2.part00 .mpart/smollm2.part01 >$model
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site DUET_MODEL=$model
    python3 scripts/hf_smollm2_reference.py --gguf $model --prompts tests/data/hf/smollm2_prompts.json \
        --out tests/data/hf 2>&1 | grep -v -e Warning -e Converting -e "Loading weights" | tail -8
    cp tests/data/hf/smollm2_states.safetensors tests/data/hf/smollm2_greedy.json "$out/"
    cd $b && make -j16 >/tmp/build.log 2>&1 || { grep error /tmp/build.log | head; exit 1; }
    make -j16 check TESTS="tests/test_smollm2 tests/test_gpu_diff.sh" >/tmp/check.log 2>&1
    grep -E "^(PASS|FAIL|SKIP|ERROR)|^Check:" /tmp/check.log
    grep -h -E "rel_l2|greedy|summaries|FAIL|SmolLM2" tests/test_smollm2.log tests/test_gpu_diff.sh.log | head -30
    cp tests/test_smollm2.log tests/test_gpu_diff.sh.log "$out/"
    ;;
esac
