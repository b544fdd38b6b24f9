#!/bin/bash
# scripts/gpu_quant.sh: weight-only quantization on the lent GPU machine, in stages (one device call
# each, back to back while the machine stays warm; /tmp survives between them):
#   build  unpack .debs (scripts/device_env.sh), build duet and the test programs with CUDA in
#          /tmp/duet-build; keep the first half of the default model (.mpart/*.part00) in /tmp
#   bench  duet bench on the synthetic LLaMA-7B in every weight mode ($OUT/bench.jsonl, bench.txt)
#   test   join the model halves, run the GPU suites of quantization and those they share
#          (test_gpu_quant, test_gpu_model, test_gpu_greedy, test_gpu_diff.sh, test_cli_smollm2.sh)
#   profile  Nsight Compute on the decode step's weight products at batch 1 (fp16, int8, int4-g128, q4_1;
#          the GEMV, and the tensor-core qmma in its place): $OUT/ncu_<mode>.txt, the summary lines printed
#   tolerances  what golden/tolerances' DTYPE:MODE rows are set from: tests/test_gpu_diff.sh's synthetic
#          model in every mode, 40 / 12 / 2-token goldens (dequantize + cuBLAS, qmma, GEMV), fp16 and
#          bf16, every tap with the bounds open; the worst rel_l2 per (dtype:mode, tap kind) and the
#          logits' top-1 / KL ($OUT/tol_all.txt, tol_summary.txt); needs only duet built
#   eval   ROUGE on cnn_dailymail items 0-49 with SmolLM2 on the GPU: fp16 (its Q4_1 dequantized, the
#          HF folder duet convert writes), its native Q4_1, and every mode requantized from the fp16 one
#          ($OUT/eval_*.json, eval.txt)
# usage, from the source root, carry [".debs", ".devdata", ".mpart" or one half of it]:
#   DUET_DATA=$PWD/.devdata bash scripts/gpu_quant.sh build bench   (then: test, eval)
set -u
out=${OUT:-$PWD/gpu_quant_out}
mkdir -p "$out"
src=$PWD
b=/tmp/duet-build
model=/tmp/smollm2.gguf
export DUET_DATA=${DUET_DATA:-$src/.devdata}
[ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
join_model() {
    [ -f $model ] && return 0
    for p in .mpart/*.part01; do [ -f "$p" ] && cat /tmp/smollm2.part00 "$p" >$model; done
    [ -f $model ] && sha256sum $model
}
for stage in "$@"; do
    t0=$(date +%s)
    echo "== stage $stage"
    case $stage in
    build)
        for p in .mpart/*.part00; do [ -f "$p" ] && cp "$p" /tmp/; done
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
        autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }
        mkdir -p $b && cd $b
        [ -f Makefile ] || "$src"/configure -q >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
        make -j16 >/tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -30; exit 1; }
        make -j16 check TESTS= >/tmp/build_tests.log 2>&1 || { grep -E "error" /tmp/build_tests.log | head; exit 1; }
        cd "$src"
        ;;
    bench)
        $b/duet bench --batch 1,8,64 --lengths 8/50,923/100 --repeat 1 --weights none,int8,q8_0,int4-g128,q4_0,q4_1 \
            --json "$out/bench.jsonl" >/dev/null 2>"$out/bench.txt"
        echo "bench rc=$?"
        grep -E "^#( ceilings| decode GEMMs)|^[a-z0-9-]+ +[0-9]+ " "$out/bench.txt" | grep -v "^# case"
        ;;
    test)
        join_model
        export DUET_MODEL=$model
        cd $b
        make -j16 check TESTS="tests/test_gpu_quant tests/test_gpu_model tests/test_gpu_greedy tests/test_gpu_diff.sh \
            tests/test_cli_smollm2.sh" >/tmp/check.log 2>&1
        grep -E "^(PASS|FAIL|SKIP|ERROR)|^# " /tmp/check.log
        for t in test_gpu_quant test_gpu_model test_gpu_greedy test_gpu_diff.sh test_cli_smollm2.sh; do
            cp tests/$t.log "$out/$t.log" 2>/dev/null
        done
        grep -E "not ok|FAIL" tests/test_gpu_diff.sh.log | head -20
        grep -E "taps out|all .* taps" tests/test_gpu_diff.sh.log | head -40
        cd "$src"
        ;;
    profile)
        ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
        sec="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
            --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis"
        prof() { # NAME KERNEL-REGEX WEIGHTS [ENV...]
            local name=$1 re=$2 w=$3; shift 3
            env "$@" $ncu --kernel-name "regex:$re" --launch-skip 130 --launch-count 4 $sec \
                $b/duet bench --batch 1 --lengths 8/8 --repeat 1 --no-ceilings --weights $w >"$out/ncu_$name.txt" 2>&1
            echo "$name rc=$?"
            grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|No Eligible|Registers Per|Achieved Occupancy|Block Limit Registers" \
                "$out/ncu_$name.txt" | head -60
        }
        prof fp16 gemv_kernel none
        prof int8 gemv_kernel int8
        prof int4-g128 gemv_kernel int4-g128
        prof q4_1-qmma qmma_kernel q4_1 DUET_QGEMV_MAX_T=0
        ;;
    tolerances)
        d=$b/duet t=$(mktemp -d)
        printf '%s\n' "* logits top1 0" "* logits kl 1e30" "* * rel_l2 1e30" >"$t/open"
        $d synth -o "$t/qsynth" --dim 256 --ffn 768 --layers 2 --heads 4 --kv-heads 2 --head-dim 64 --vocab 512 2>/dev/null
        ids40=$(seq -s, 3 7 282) ids12=5,17,99,3,250,41,7,300,12,1,88,64 ids2=9,33
        for w in int8 int4 int4-g128 int4-g64 q8_0 q4_0 q4_1; do
            for n in 40 12 2; do
                eval ids=\$ids$n
                $d golden -m "$t/qsynth" --ids "$ids" --weights $w -o "$t/g.safetensors" 2>/dev/null || echo "golden $w $n failed"
                for mode in fp16 bf16; do
                    $d diff -m "$t/qsynth" "$t/g.safetensors" --backend gpu --mode $mode --weights $w --tolerances "$t/open" \
                        >"$t/$mode:$w.$n.txt" 2>&1 || echo "diff $mode:$w $n rc=$?"
                done
            done
        done
        for f in "$t"/*.txt; do echo "== $(basename "$f")"; cat "$f"; done >"$out/tol_all.txt"
        for mw in $(ls "$t" | grep txt | sed 's/\.[0-9]*\.txt$//' | sort -u); do
            cat "$t/$mw".*.txt | awk -v mw=$mw '$1 ~ /^(embed|layers|final_norm|logits)/ {
                kind = $1; sub(/^layers\.[0-9]+\./, "", kind)
                if ($3 + 0 > worst[kind]) worst[kind] = $3 + 0
            } END { line = mw; for (k in worst) line = line sprintf(" %s %.1e", k, worst[k]); print line }'
            grep -h "^logits" "$t/$mw".*.txt | sed -E "s/^/$mw /; s/ +/ /g"
        done | tee "$out/tol_summary.txt"
        rm -rf "$t"
        ;;
    eval)
        join_model
        d=$b/duet
        [ -d /tmp/smol_hf ] || $d convert $model /tmp/smol_hf --type f32 >/dev/null 2>&1 || { echo "convert failed"; exit 1; }
        run() { # NAME ARGS...
            local name=$1; shift
            $d eval -n 50 --backend gpu --dtype fp16 --json "$out/eval_$name.json" "$@" >/tmp/eval_$name.txt 2>&1
            echo "$name rc=$? $(grep -E 'rouge1|ROUGE-1|rouge-1' /tmp/eval_$name.txt | head -1)"
        }
        run fp16 -m /tmp/smol_hf
        run q4_1_native -m $model
        for w in int8 int4 int4-g64 q8_0 q4_0 q4_1; do run $w -m /tmp/smol_hf --weights $w; done
        for w in q4_1_native int8 int4 int4-g64 q8_0 q4_0 q4_1; do
            echo "== fp16 -> $w"; $d eval --compare "$out/eval_fp16.json" "$out/eval_$w.json" 2>&1 | tail -6
        done >"$out/eval.txt"
        cat "$out/eval.txt"
        ;;
    esac
    echo "== stage $stage: $(( $(date +%s) - t0 )) s"
done
