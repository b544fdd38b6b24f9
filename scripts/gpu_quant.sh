#!/bin/bash
# scripts/gpu_quant.sh: on the lent GPU machine, build duet out of tree (/tmp/duet-build, kept while the
# machine stays warm) and run the GPU suites of weight-only quantization and the kernels they share:
# test_gpu_quant, test_gpu_ops, test_gpu_greedy, test_gpu_model. Logs under $OUT. Usage, from the source
# root, with carry [".debs", ".devdata"]: DUET_DATA=$PWD/.devdata bash scripts/gpu_quant.sh [suite...]
set -u
out=${OUT:-$PWD/gpu_quant_out}
mkdir -p "$out"
src=$PWD
[ -f scripts/device_env.sh ] && [ -d .debs ] && source scripts/device_env.sh
autoreconf -fi >/dev/null 2>&1 || { echo "autoreconf failed"; exit 1; }
mkdir -p /tmp/duet-build && cd /tmp/duet-build
[ -f Makefile ] || "$src"/configure -q >/tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
suites=${*:-test_gpu_quant test_gpu_ops test_gpu_greedy test_gpu_model}
t0=$(date +%s)
make -j16 duet $(for t in $suites; do echo tests/$t; done) >/tmp/build.log 2>&1 || { grep -E "error|Error" /tmp/build.log | head -30; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
for t in $suites; do
    t1=$(date +%s)
    ./tests/$t >"$out/$t.txt" 2>&1
    echo "== $t rc=$? ($(( $(date +%s) - t1 )) s)"
    grep -E "^[0-9]+%|Checks|Failures|Errors|FAIL|worst" "$out/$t.txt" | head -20
done
