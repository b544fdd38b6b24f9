#!/bin/sh
# test_cli_eval.sh: `duet eval` as a user runs it: the too-long-context message, bad data files named
# with their line, the table and --json, --check-accuracy, --compare. Model parts skip without data.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="$data/stories260K"
fx="$src/tests/data/rouge/fixtures"

"$duet" eval --help >"$tmp/h"; check "--help exits 0 with examples" grep -q "examples" "$tmp/h"
"$duet" eval --bogus >/dev/null 2>&1; check "unknown flag exits 2" test $? -eq 2
"$duet" eval --compare only_one.json >/dev/null 2>&1; check "--compare needs two files" test $? -eq 2
if [ ! -f "$model/model.safetensors" ]; then
    echo "SKIP: stories260K not found under $data"; [ $fail -eq 0 ] && exit 77 || exit 1
fi
"$duet" eval -m "$model" --data "$fx/cnn_ok.jsonl" -n 1 --max-output 4 >/dev/null 2>"$tmp/e"; rc=$?
check "the default --max-input is fitted to a 512-position model" test $rc -eq 0
check "...with a note naming the --max-input used" grep -q "note: .*using --max-input 508" "$tmp/e"
"$duet" eval -m "$model" --data "$fx/cnn_ok.jsonl" --max-input 923 >/dev/null 2>"$tmp/e"; rc=$?
check "an explicit --max-input 923 on a 512-position model exits 1" test $rc -eq 1
check "...telling the user to lower --max-input" grep -q "lower --max-input to 412" "$tmp/e"
"$duet" eval -m "$model" --data "$tmp/missing.jsonl" --max-input 923 >/dev/null 2>"$tmp/e"
check "a missing data file is named before the lengths are checked" sh -c "grep -q missing.jsonl '$tmp/e' && ! grep -q max-input '$tmp/e'"
"$duet" eval -m "$model" -n 1 --max-output 2 --json "$tmp/no/such/dir/a.json" >/dev/null 2>"$tmp/e"; rc=$?
check "an unwritable --json fails at once with the reason" sh -c "test $rc -eq 1 && grep -q 'no/such/dir/a.json: cannot write: No such file or directory' '$tmp/e' && ! grep -q '1/1' '$tmp/e'"
"$duet" eval -m "$model" --max-input 412 --data "$tmp/missing.jsonl" >/dev/null 2>"$tmp/e"
check "missing data file is named" grep -q "missing.jsonl" "$tmp/e"
"$duet" eval -m "$model" --max-input 412 --data "$fx/cnn_malformed.jsonl" >/dev/null 2>"$tmp/e"; rc=$?
check "malformed JSON line: exit 1, file and line named" sh -c "test $rc -eq 1 && grep -q 'cnn_malformed.jsonl line [0-9]' '$tmp/e'"
"$duet" eval -m "$model" --max-input 412 --data "$fx/cnn_no_highlights.jsonl" >/dev/null 2>"$tmp/e"
check "item without highlights: named" grep -q "highlights" "$tmp/e"

# A NUL byte inside an article does not cut the prompt: the text after it is tokenized too.
cat >"$tmp/nul.jsonl" <<'JSONL'
{"id": "nul", "article": "Tom had a red ball.\u0000 Then he ran home to his mom and they ate a big cake.", "highlights": "Tom ran home."}
{"id": "cut", "article": "Tom had a red ball.", "highlights": "Tom ran home."}
JSONL
"$duet" eval -m "$model" --data "$tmp/nul.jsonl" -n 2 --max-input 400 --max-output 2 --json "$tmp/nul.json" >/dev/null 2>"$tmp/e"
check "an article with a NUL runs" test $? -eq 0
n_nul=$(grep -o '"input_tokens": [0-9]*' "$tmp/nul.json" | sed -n 1p | grep -o '[0-9]*$')
n_cut=$(grep -o '"input_tokens": [0-9]*' "$tmp/nul.json" | sed -n 2p | grep -o '[0-9]*$')
check "...and its prompt keeps the text after the NUL ($n_nul tokens, $n_cut up to it)" test "${n_nul:-0}" -gt $(( ${n_cut:-0} + 10 ))

"$duet" eval -m "$model" -n 3 --max-input 412 --json "$tmp/a.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "3 items run end to end" test $rc -eq 0
check "prints summarize.py's lines" sh -c "grep -q 'total latency' '$tmp/out' && grep -q 'tokens per second' '$tmp/out' && grep -q '^rougeLsum' '$tmp/out'"
check "progress bar on stderr" grep -q "3/3" "$tmp/err"
check "--json holds each item's summary and ids" sh -c "grep -q '\"summary\"' '$tmp/a.json' && grep -q '\"output_ids\"' '$tmp/a.json'"
"$duet" eval -m "$model" -n 3 --max-input 412 --check-accuracy --rouge1-threshold 99 >/dev/null 2>"$tmp/e"
check "--check-accuracy below the threshold exits 1" test $? -eq 1
"$duet" eval -m "$model" -n 3 --max-input 412 --check-accuracy --rouge1-threshold 1 >/dev/null 2>&1
check "--check-accuracy above the threshold exits 0" test $? -eq 0
"$duet" eval -m "$model" -n 2 --max-input 412 --max-output 20 --json "$tmp/b.json" >/dev/null 2>&1
"$duet" eval --compare "$tmp/a.json" "$tmp/b.json" >"$tmp/c"; rc=$?
check "--compare prints the four deltas" sh -c "test $rc -eq 0 && test \$(grep -c '^rouge' '$tmp/c') -eq 4"
"$duet" eval --compare "$tmp/a.json" "$fx/cnn_ok.jsonl" >/dev/null 2>"$tmp/e"
check "--compare on a non-eval file is an error" test $? -eq 1
exit $fail
