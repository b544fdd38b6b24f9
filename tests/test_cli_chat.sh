#!/bin/sh
# test_cli_chat.sh: `duet chat` on piped input with the default model (SmolLM2-135M-Instruct Q4_1 GGUF,
# `make model`): a greedy two-turn conversation (Paris, then Rome, the second turn on the cache of the
# first), /reset, /system, a context that fills up, and usage errors. Skips (77) without the model.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

"$duet" chat --help >"$tmp/help" 2>&1; rc=$?
check "chat --help exits 0 and shows an example" sh -c "test $rc -eq 0 && grep -q 'example' '$tmp/help' && grep -q 'duet chat' '$tmp/help'"
"$duet" chat --no-such-flag </dev/null >"$tmp/out" 2>&1; rc=$?
check "unknown flag exits 2 naming it" sh -c "test $rc -eq 2 && grep -q 'no-such-flag' '$tmp/out'"
"$duet" chat -m "$model" --ctx 0 </dev/null >"$tmp/out" 2>&1; rc=$?
check "--ctx 0 exits 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- '--ctx' '$tmp/out'"
"$duet" chat -m "$model" -n x </dev/null >"$tmp/out" 2>&1; rc=$?
check "-n x exits 2 naming the flag" sh -c "test $rc -eq 2 && grep -q -- '-n' '$tmp/out'"
"$duet" chat -m "$model" hello </dev/null >"$tmp/out" 2>&1; rc=$?
check "a message as an argument exits 2" test "$rc" -eq 2

if [ ! -f "$model" ]; then
    echo "SKIP: the default model is not at $model (run \`make model\`)"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi

# Two turns, greedy: Paris, then Rome; the second turn prefills only its new tokens.
printf 'What is the capital of France?\n\nAnd of Italy?\n' |
    "$duet" chat -m "$model" --temp 0 -n 48 >"$tmp/two" 2>"$tmp/two.err"; rc=$?
check "two turns exit 0" test "$rc" -eq 0
check "turn 1 mentions Paris" sh -c "head -n 1 '$tmp/two' | grep -q Paris"
check "turn 2 mentions Rome" sh -c "sed -n 2p '$tmp/two' | grep -q Rome"
check "the empty line is skipped: two answers" sh -c "test \$(grep -c 'new tokens' '$tmp/two.err') -eq 2"
check "turn 1 starts from an empty cache" sh -c "grep 'new tokens' '$tmp/two.err' | head -n 1 | grep -q '(0 cached)'"
check "turn 2 reuses the cache" sh -c "grep 'new tokens' '$tmp/two.err' | sed -n 2p | grep -Eq '\\([1-9][0-9]* cached\\)'"
check "no prompt on stderr when stdin is a pipe" sh -c "! grep -q '^> ' '$tmp/two.err'"

# Turn 1 is what `duet generate --chat` answers to the same question.
"$duet" generate -m "$model" --chat -p "What is the capital of France?" --temp 0 -n 48 >"$tmp/gen" 2>/dev/null
check "turn 1 equals generate --chat" sh -c "head -n 1 '$tmp/two' | cmp -s - '$tmp/gen'"

# /reset: the question after it is answered as a first turn (the same text as turn 1 above, from an
# empty cache); /exit ends before the last line.
printf 'And of Italy?\n/reset\nWhat is the capital of France?\n/exit\nAnd of Italy?\n' |
    "$duet" chat -m "$model" --temp 0 -n 48 >"$tmp/reset" 2>"$tmp/reset.err"; rc=$?
check "/reset: exit 0 and says so" sh -c "test $rc -eq 0 && grep -q 'conversation reset' '$tmp/reset.err'"
check "/reset: the next turn starts from an empty cache" sh -c "grep 'new tokens' '$tmp/reset.err' | sed -n 2p | grep -q '(0 cached)'"
check "/reset: ...and answers as a first turn" sh -c "sed -n 2p '$tmp/reset' | cmp -s - '$tmp/gen'"
check "/exit ends the conversation" sh -c "test \$(grep -c 'new tokens' '$tmp/reset.err') -eq 2"

# /system sets the system prompt (as --system does) and resets.
printf '/system Answer in French.\nWhat is the capital of France?\n' |
    "$duet" chat -m "$model" --temp 0 -n 48 >"$tmp/sys1" 2>"$tmp/sys1.err"
"$duet" chat -m "$model" --temp 0 -n 48 --system "Answer in French." >"$tmp/sys2" 2>/dev/null <<'TXT'
What is the capital of France?
TXT
check "/system TEXT answers as --system TEXT does" sh -c "test -s '$tmp/sys1' && cmp -s '$tmp/sys1' '$tmp/sys2'"
check "/system answers otherwise than the default system prompt" sh -c "! cmp -s '$tmp/sys1' '$tmp/gen'"
printf '/nope\nWhat is the capital of France?\n' | "$duet" chat -m "$model" --temp 0 -n 48 >"$tmp/cmd" 2>"$tmp/cmd.err"; rc=$?
check "an unknown /command is named and skipped" sh -c "test $rc -eq 0 && grep -q \"unknown command '/nope'\" '$tmp/cmd.err' && cmp -s '$tmp/cmd' '$tmp/gen'"

# A context that fills: turn 1 (about 40 prompt positions) fits 64, its answer is cut when the context
# runs out, and the turn after gets the message instead of a crash; /reset makes room again.
printf 'What is the capital of France? Tell me about its history.\nAnd of Italy?\n/reset\nHi\n' |
    "$duet" chat -m "$model" --temp 0 -n 200 --ctx 64 >"$tmp/full" 2>"$tmp/full.err"; rc=$?
check "full context: exit 0" test "$rc" -eq 0
check "full context: the clear message" grep -q 'context full (64 positions): /reset to start over' "$tmp/full.err"
check "full context: turn 1 used the whole context" grep -q '| 64/64 positions' "$tmp/full.err"
check "full context: /reset, then an answer again" sh -c "test \$(grep -c 'new tokens' '$tmp/full.err') -eq 2"
"$duet" chat -m "$model" --temp 0 --ctx 8 >"$tmp/tiny" 2>"$tmp/tiny.err" <<'TXT'
What is the capital of France?
TXT
check "a first turn longer than the context: the message, exit 0" sh -c "test $? -eq 0 && grep -q 'context full (8 positions)' '$tmp/tiny.err'"
exit $fail
