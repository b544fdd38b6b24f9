#!/bin/sh
# test_serve.sh: `duet serve` on the default model (SmolLM2-135M-Instruct Q4_1, ref backend), started on
# 127.0.0.1 on a free port: the official `openai` client (tests/serve_client.py) and curl run completions
# and chat, streamed and not; greedy replies equal `duet generate`'s for the same prompt and max tokens;
# stop strings (string and array) cut the greedy reply right before their first occurrence;
# every bad request gets its status and OpenAI's error shape and the server keeps serving; clients that
# go away mid-stream are cancelled; over --max-concurrent is 429; SIGTERM drains (the running request
# finishes, new requests get 503) and exits 0; a second server in a calibrated mode (FP8 W8A8 + fp8 KV
# cache) answers greedily as duet generate in that mode. Skips (77) without the model; the openai checks
# skip without the package (CI installs it: .ci/run).
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
key=test-key
n=8 # greedy tokens: the ref on two shared cores is slow

"$duet" serve --help >"$tmp/help" 2>&1; rc=$?
check "serve --help exits 0 and shows an example" sh -c "test $rc -eq 0 && grep -q example '$tmp/help'"
"$duet" serve --no-such-flag >"$tmp/out" 2>&1; rc=$?
check "serve: an unknown flag exits 2" test "$rc" -eq 2
"$duet" serve --policy fastest >"$tmp/out" 2>&1; rc=$?
check "serve --policy fastest: exit 2 naming the policies" sh -c "test $rc -eq 2 && grep -q 'no-evict or max-utilization' '$tmp/out'"
"$duet" serve --batch-invariant yes >"$tmp/out" 2>&1; rc=$?
check "serve --batch-invariant yes: exit 2 naming it" sh -c "test $rc -eq 2 && grep -q \"'yes' is not on or off\" '$tmp/out'"
"$duet" serve --max-seqs 8 --token-budget 4 >"$tmp/out" 2>&1; rc=$?
check "serve: --token-budget below --max-seqs exits 2" test "$rc" -eq 2

if [ ! -f "$model" ]; then
    echo "SKIP: the default model is not at $model (run \`make model\`)"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi

"$duet" serve -m "$model" --port 0 --w8a8 sq >"$tmp/out" 2>&1; rc=$?
check "serve --w8a8 sq without --calib: exit 2 asking for it" sh -c "test $rc -eq 2 && grep -q 'give --calib FILE' '$tmp/out'"
start_server "$tmp/server.err" --max-ctx 256 --max-seqs 4 --api-key "$key" --max-body 4096 --max-concurrent 2
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
url="http://127.0.0.1:$port"
echo "server on $url (pid $pid)"

# post PATH BODY [curl args]: the status on stdout, the body in $tmp/body.
post() { p=$1; b=$2; shift 2; curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' "$@" -d "$b" "$url$p"; }
# error_shape FILE: {"error": {"message": a non-empty string, "type": a string, "param", "code"}}
error_shape() { python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert isinstance(e["message"],str) and e["message"] and isinstance(e["type"],str) and "param" in e and "code" in e' "$1" 2>/dev/null; }
# field FILE EXPR: a value of the reply, for python's eval with j the parsed body
field() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]), end="")' "$1" "$2"; }
good() { st=$(post /v1/completions '{"prompt":"Hi","max_tokens":1}'); test "$st" = 200; }
# bad NAME STATUS PATH BODY [curl args]: the status, the error shape, and a good request right after.
bad() { name=$1; want=$2; p=$3; b=$4; shift 4; st=$(post "$p" "$b" "$@")
    cp "$tmp/body" "$tmp/bad_body"
    check "$name: $want" test "$st" = "$want"
    check "$name: the error shape" error_shape "$tmp/bad_body"
    check "$name: the next request is served" good; }

st=$(curl -s -o "$tmp/body" -w '%{http_code}' "$url/health")
check "GET /health: 200" test "$st" = 200
st=$(curl -s -o "$tmp/models" -w '%{http_code}' -H "Authorization: Bearer $key" "$url/v1/models")
mid=$(field "$tmp/models" 'j["data"][0]["id"]')
check "GET /v1/models: 200, the model's name" sh -c "test $st = 200 && test '$mid' = SmolLM2-135M-Instruct.Q4_1"

# Greedy replies equal duet generate's: a completion prints the prompt then the text, chat only the answer.
# The ref server is batch-invariant by default (each row's sums on their own), so generate runs the same
# products with --batch-invariant on: equal bit for bit by construction, not by the luck of two roundings.
prompt="The capital of France is"
question="What is the capital of France?"
"$duet" generate -m "$model" -p "$prompt" -n $n --temp 0 --batch-invariant on >"$tmp/gen_completion" 2>/dev/null
"$duet" generate -m "$model" --chat -p "$question" -n $n --temp 0 --batch-invariant on >"$tmp/gen_chat" 2>/dev/null
st=$(post /v1/completions "{\"model\":\"$mid\",\"prompt\":\"$prompt\",\"max_tokens\":$n,\"temperature\":0}")
check "curl completion: 200, object text_completion" test "$st $(field "$tmp/body" 'j["object"]')" = "200 text_completion"
{ printf '%s' "$prompt"; field "$tmp/body" 'j["choices"][0]["text"]'; echo; } >"$tmp/srv_completion"
check "curl completion, greedy: prompt + text = duet generate's output" cmp -s "$tmp/srv_completion" "$tmp/gen_completion"
cp "$tmp/body" "$tmp/completion.json"
st=$(post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}],\"max_tokens\":$n,\"temperature\":0}")
check "curl chat: 200, object chat.completion" test "$st $(field "$tmp/body" 'j["object"]')" = "200 chat.completion"
{ field "$tmp/body" 'j["choices"][0]["message"]["content"]'; echo; } >"$tmp/srv_chat"
cp "$tmp/body" "$tmp/chat.json"
check "curl chat, greedy: the answer = duet generate --chat's output" cmp -s "$tmp/srv_chat" "$tmp/gen_chat"
cat "$tmp/srv_chat"

# Streamed with curl: data: events, the last data: [DONE], the deltas join to the whole reply.
post /v1/completions "{\"prompt\":\"$prompt\",\"max_tokens\":$n,\"temperature\":0,\"stream\":true}" -N >/dev/null
cp "$tmp/body" "$tmp/sse"
check "curl streamed completion: data: events ending with data: [DONE]" sh -c \
    "grep -v '^\$' '$tmp/sse' | grep -qv '^data: ' && exit 1; test \"\$(grep -v '^\$' '$tmp/sse' | tail -n 1)\" = 'data: [DONE]'"
sse_text() { python3 -c 'import json,sys
out=""
for l in open(sys.argv[1]):
    l=l.strip()
    if l.startswith("data: {"):
        c=json.loads(l[6:])["choices"]
        if c: out+=c[0]["text"] if sys.argv[2]=="text" else (c[0]["delta"].get("content") or "")
print(out, end="")' "$1" "$2"; }
check "curl streamed completion: the chunks join to the greedy text" \
    test "$(sse_text "$tmp/sse" text)" = "$(field "$tmp/completion.json" 'j["choices"][0]["text"]')"
post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$question\"}],\"max_tokens\":$n,\"temperature\":0,\"stream\":true}" -N >/dev/null
{ sse_text "$tmp/body" delta; echo; } >"$tmp/srv_chat_stream"
check "curl streamed chat: the deltas join to duet generate --chat's output" cmp -s "$tmp/srv_chat_stream" "$tmp/gen_chat"
check "curl streamed chat: chat.completion.chunk objects, a finish_reason" sh -c \
    "grep -q '\"object\":\"chat.completion.chunk\"' '$tmp/body' && grep -q '\"finish_reason\":\"\\(stop\\|length\\)\"' '$tmp/body'"

# Stop strings, taken from the greedy replies above so that they are in them: at temperature 0 the reply
# with stop equals the unstopped one cut right before the first occurrence of any of its stop strings,
# with finish_reason "stop"; as one string and as an array (one string never in the reply, two that are,
# the earlier one cut at), streamed (the chunks joined, the last finish_reason, data: [DONE]) and not.
# stop_check KIND FORM STREAM: KIND completion|chat, FORM string|array, STREAM true|false.
stop_check() { python3 -c 'import json, sys, urllib.request
url, key, kind, form, stream, n, prompt, path = sys.argv[1:9]
chat = kind == "chat"
j = json.load(open(path))["choices"][0]
full = j["message"]["content"] if chat else j["text"]
k = len(full) // 2
stops = full[k:k + 3] if form == "string" else ["\u2603 never", full[k:k + 3], full[k // 2:k // 2 + 2]]
assert all(stops), ("a reply too short for stop strings", full)
at = min(full.find(s) for s in ([stops] if form == "string" else stops) if s in full)
want = full[:at]
body = {"max_tokens": int(n), "temperature": 0, "stop": stops, "stream": stream == "true"}
body.update({"messages": [{"role": "user", "content": prompt}]} if chat else {"prompt": prompt})
req = urllib.request.Request(url + ("/v1/chat/completions" if chat else "/v1/completions"), json.dumps(body).encode(),
                             {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    raw = r.read().decode()
if stream == "true":
    events = [l[6:] for l in raw.splitlines() if l.startswith("data: ")]
    assert events and events[-1] == "[DONE]", ("no data: [DONE] at the end", raw)
    text, finish = "", None
    for e in events[:-1]:
        for c in json.loads(e)["choices"]:
            text += (c["delta"].get("content") or "") if chat else c["text"]
            finish = c["finish_reason"] or finish
else:
    c = json.loads(raw)["choices"][0]
    text, finish = c["message"]["content"] if chat else c["text"], c["finish_reason"]
if text != want or finish != "stop":
    sys.exit("stop %r on %r: got %r (finish %s), want %r (finish stop)" % (stops, full, text, finish, want))
' "$url" "$key" "$@"; }
check "completion, stop as a string: the greedy reply cut before it, finish stop" \
    stop_check completion string false $n "$prompt" "$tmp/completion.json"
check "completion, stop as an array: cut before the first of them, finish stop" \
    stop_check completion array false $n "$prompt" "$tmp/completion.json"
check "streamed completion, stop as a string: the chunks join to the cut reply, finish stop" \
    stop_check completion string true $n "$prompt" "$tmp/completion.json"
check "streamed completion, stop as an array: the chunks join to the cut reply, finish stop" \
    stop_check completion array true $n "$prompt" "$tmp/completion.json"
check "chat, stop as an array: the greedy answer cut before the first of them, finish stop" \
    stop_check chat array false $n "$question" "$tmp/chat.json"
check "streamed chat, stop as a string: the deltas join to the cut answer, finish stop" \
    stop_check chat string true $n "$question" "$tmp/chat.json"

# The official client.
if python3 -c "import openai" 2>/dev/null; then
    python3 "$src/tests/serve_client.py" "$url" "$key" openai "$prompt" "$question" $n "$tmp/client.json"
    check "openai client: its checks pass" test $? -eq 0
    { printf '%s' "$prompt"; field "$tmp/client.json" 'j["completion"]'; echo; } >"$tmp/client_completion"
    { field "$tmp/client.json" 'j["chat"]'; echo; } >"$tmp/client_chat"
    check "openai client, greedy completion: = duet generate's" cmp -s "$tmp/client_completion" "$tmp/gen_completion"
    check "openai client, greedy chat: = duet generate --chat's" cmp -s "$tmp/client_chat" "$tmp/gen_chat"
else
    echo "SKIP: the openai Python package is not installed (pip install openai): its checks are left out"
fi

# Bad requests: each its status and the error shape, and the server keeps serving.
bad "malformed JSON" 400 /v1/completions '{"prompt": "Hi", '
bad "a body that is not an object" 400 /v1/completions '["Hi"]'
bad "prompt of the wrong type" 400 /v1/completions '{"prompt": 42}'
bad "temperature of the wrong type" 400 /v1/completions '{"prompt": "Hi", "temperature": "hot"}'
bad "stream of the wrong type" 400 /v1/completions '{"prompt": "Hi", "stream": "yes"}'
bad "messages of the wrong type" 400 /v1/chat/completions '{"messages": "Hi"}'
bad "a message without a known role" 400 /v1/chat/completions '{"messages": [{"role": "wizard", "content": "Hi"}]}'
bad "negative max_tokens" 400 /v1/completions '{"prompt": "Hi", "max_tokens": -1}'
bad "huge max_tokens" 400 /v1/completions '{"prompt": "Hi", "max_tokens": 1000000000}'
check "huge max_tokens: the error names max_tokens" test "$(field "$tmp/bad_body" 'j["error"]["param"]')" = max_tokens
long=$(yes "the cat sat on the mat." | head -n 60 | tr '\n' ' ')
bad "a prompt longer than the context (--max-ctx 256)" 400 /v1/completions "{\"prompt\": \"$long\", \"max_tokens\": 1}"
check "long prompt: code context_length_exceeded" grep -q context_length_exceeded "$tmp/bad_body"
bad "prompt + max_tokens beyond the context" 400 /v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 255}"
bad "a bad escape before half a character: still a JSON error" 400 /v1/completions "$(printf '{"prompt": "x", "stop": "\\u0\316\232"}')"
check "bad escape: code invalid_json (not the 500 fallback)" test "$(field "$tmp/bad_body" 'j["error"]["code"]')" = invalid_json
bad "a stop string over 1024 bytes" 400 /v1/completions "{\"prompt\": \"Hi\", \"stop\": \"$(head -c 1025 /dev/zero | tr '\0' x)\"}"
check "long stop string: the error names stop" test "$(field "$tmp/bad_body" 'j["error"]["param"]')" = stop
bad "an unknown model" 404 /v1/completions '{"model": "gpt-4", "prompt": "Hi"}'
bad "an unknown path" 404 /v1/embeddings '{"input": "Hi"}'
head -c 8000 /dev/zero | tr '\0' ' ' >"$tmp/big"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $key" --data-binary "@$tmp/big" "$url/v1/completions")
check "a body over --max-body 4096: 413" test "$st" = 413
check "413: the error shape" error_shape "$tmp/body"
check "413: the next request is served" good
st=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"prompt":"Hi"}' "$url/v1/completions")
check "no API key: 401" test "$st" = 401
check "401: the error shape" error_shape "$tmp/body"
st=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Authorization: Bearer wrong' -d '{"prompt":"Hi"}' "$url/v1/completions")
check "a wrong API key: 401" test "$st" = 401
check "wrong key: the next request is served" good

# A client that goes away mid-stream (curl's reader stops after two events) is cancelled.
curl -s -N -H "Authorization: Bearer $key" -d '{"prompt":"Once upon a time","max_tokens":200,"stream":true}' \
    "$url/v1/completions" 2>/dev/null | head -n 3 >/dev/null
i=0
while [ $i -lt 100 ] && ! grep -q 'client gone.*finish=cancelled' "$tmp/server.err"; do sleep 0.1; i=$((i + 1)); done
check "curl gone mid-stream: its request is cancelled (the log says so)" grep -q 'client gone.*finish=cancelled' "$tmp/server.err"
check "after it, the next request is served" good
if python3 -c "import openai" 2>/dev/null; then
    python3 "$src/tests/serve_client.py" "$url" "$key" busy 2
    check "over --max-concurrent: 429; streams dropped mid-way are cancelled; then served (openai client)" test $? -eq 0
fi

curl -s "$url/metrics" >"$tmp/metrics"
for m in duet_requests_running duet_requests_waiting duet_kv_blocks_used duet_prompt_tokens_total \
    duet_generation_tokens_total duet_time_to_first_token_seconds_bucket duet_inter_token_latency_seconds_bucket; do
    check "/metrics has $m" grep -q "^$m" "$tmp/metrics"
done
check "/metrics: tokens were generated and timed" sh -c \
    "grep -q '^duet_generation_tokens_total [1-9]' '$tmp/metrics' && grep -q '^duet_inter_token_latency_seconds_count [1-9]' '$tmp/metrics'"
check "/metrics: the cancelled requests are counted" grep -q '^duet_requests_finished_total{reason="cancelled"} [1-9]' "$tmp/metrics"
check "one log line per request: method, path, status, tokens, ms" \
    grep -q '^serve: POST /v1/chat/completions 200 prompt=[0-9]* generated=[0-9]* finish=stop [0-9.]*ms$' "$tmp/server.err"

# SIGTERM: the running request finishes, a new one on an open connection gets 503, exit 0.
if python3 -c "import openai" 2>/dev/null; then
    python3 "$src/tests/serve_client.py" "$url" "$key" drain $pid
    check "SIGTERM drains (serve_client.py drain)" test $? -eq 0
else
    kill -TERM $pid
fi
wait $pid
rc=$?
check "after SIGTERM the server exits 0" test $rc -eq 0
check "the log says it drained" grep -q "drained; exiting" "$tmp/server.err"
st=$(curl -s -o /dev/null -w '%{http_code}' "$url/health")
check "after the exit nothing listens" test "$st" = 000
[ $fail -ne 0 ] && cat "$tmp/server.err"

# A calibrated mode through the server (FP8 W8A8 with an fp8 KV cache, on the ref): the greedy completion
# equals duet generate's in the same mode. A small calibration (2 items of 32 tokens) keeps it quick.
# The server runs with --batch-invariant off, so that its one request runs the same products as duet
# generate (one sgemm per step; the invariant server sums each row apart, whose fp32 rounding differs, and
# the per-token FP8 codes turn that into another token: on an AMD EPYC CI machine the invariant reply was
# " Paris.\n\nThe answer is:" against generate's " Paris.\n\nThe only exception to", token 4).
"$duet" calibrate -m "$model" --items 50-51 --max-tokens 32 -o "$tmp/calib.json" >/dev/null 2>&1
check "calibrate (2 items) for the calibrated server" test $? -eq 0
start_server "$tmp/server_fp8.err" --max-ctx 128 --max-seqs 2 --w8a8 fp8 --kv-cache fp8 --calib "$tmp/calib.json" \
    --batch-invariant off
url="http://127.0.0.1:$port"
"$duet" generate -m "$model" -p "$prompt" -n $n --temp 0 --w8a8 fp8 --kv-cache fp8 --calib "$tmp/calib.json" \
    >"$tmp/gen_fp8" 2>/dev/null
st=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"model\":\"$mid\",\"prompt\":\"$prompt\",\"max_tokens\":$n,\"temperature\":0}" "$url/v1/completions")
check "fp8 + fp8 KV server: completion 200" test "$st" = 200
{ printf '%s' "$prompt"; field "$tmp/body" 'j["choices"][0]["text"]'; echo; } >"$tmp/srv_fp8"
check "fp8 + fp8 KV server, greedy: prompt + text = duet generate's in the same mode" cmp -s "$tmp/srv_fp8" "$tmp/gen_fp8"
check "fp8 + fp8 KV server: its log names the mode" grep -qi "fp8" "$tmp/server_fp8.err"
kill -TERM $pid
wait $pid
check "fp8 + fp8 KV server: exits 0 on SIGTERM" test $? -eq 0
[ $fail -ne 0 ] && cat "$tmp/server_fp8.err"
exit $fail
