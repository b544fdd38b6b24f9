#!/bin/sh
# test_cli_synth.sh: `duet synth --from-golden` regenerates the model of a golden (the ref then matches
# it exactly), refuses shape options beside it, and names a file that is not a golden.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
g="$src/golden/gqa_tied.p13.fp32.safetensors"
"$duet" synth -o "$tmp/m" --from-golden "$g" 2>"$tmp/err"
check "--from-golden writes the model" test -f "$tmp/m/model.safetensors"
check "...and says which spec" grep -q "seed=12 dim=96" "$tmp/err"
"$duet" diff -m "$tmp/m" "$g" --backend ref --tolerances "$src/golden/tolerances" >"$tmp/out" 2>&1
check "the ref on the regenerated model matches the golden" test $? -eq 0
"$duet" synth -o "$tmp/x" --from-golden "$g" --dim 8 >/dev/null 2>&1
check "shape options beside --from-golden: exit 2" test $? -eq 2
"$duet" synth -o "$tmp/x" --from-golden "$src/README.md" >/dev/null 2>"$tmp/err"
check "a file that is not a golden: exit 1 naming it" sh -c "test $? -eq 1 && grep -q README.md '$tmp/err'"
exit $fail
