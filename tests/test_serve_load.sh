#!/bin/sh
# test_serve_load.sh: scripts/serve_load.py, the load generator, against `duet serve` on the default model
# (ref backend) started on 127.0.0.1 on a free port, as tests/test_serve.sh starts it. Bad flags exit 2,
# an unreachable server and a wrong key exit 1 with a clear message; a run at two rates prints one JSON
# line per rate whose counts add up (every request answered, generated tokens from the server's usage, at
# most the sum of the max_tokens drawn and equal to it when every request stopped at its length); the
# arrivals and max_tokens are those of `duet bench --serve` with the same seed; the server's own /metrics
# counters moved by the same amounts; the chat endpoint too. Skips (77) without the model or the openai
# package. Short: the ref on two shared cores generates a few tokens/s.
set -u
. "${DUET_SRCDIR:-.}/tests/cli_lib.sh"
model="${DUET_MODEL:-$src/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
load="$src/scripts/serve_load.py"
key=test-key

if ! python3 -c "import openai" 2>/dev/null; then
    echo "SKIP: the openai Python package is not installed (pip install openai)"
    exit 77
fi
python3 "$load" --help >"$tmp/help" 2>&1; rc=$?
check "serve_load.py --help exits 0 and shows an example" sh -c "test $rc -eq 0 && grep -q example '$tmp/help'"
python3 "$load" --rates 1,fast >"$tmp/out" 2>&1; rc=$?
check "--rates 1,fast: exit 2 naming the flag" sh -c "test $rc -eq 2 && grep -q 'argument --rates' '$tmp/out'"
python3 "$load" --max-tokens 4,0 >"$tmp/out" 2>&1; rc=$?
check "--max-tokens 4,0: exit 2" test "$rc" -eq 2
python3 "$load" --endpoint embeddings >"$tmp/out" 2>&1; rc=$?
check "--endpoint embeddings: exit 2" test "$rc" -eq 2
python3 "$load" --url ftp://example >"$tmp/out" 2>&1; rc=$?
check "--url ftp://example: exit 2" test "$rc" -eq 2

if [ ! -f "$model" ]; then
    echo "SKIP: the default model is not at $model (run \`make model\`)"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi
cnn="$data/cnn_dailymail/test_100.jsonl"
if [ ! -f "$cnn" ]; then
    echo "SKIP: no cnn_dailymail data at $cnn"
    [ $fail -eq 0 ] && exit 77 || exit 1
fi

start_server "$tmp/server.err" --max-ctx 256 --max-seqs 4 --api-key "$key"
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
url="http://127.0.0.1:$port"
echo "server on $url (pid $pid)"
args="--data $cnn --requests 4 --max-tokens 2,4 --max-input-chars 200"

# Unreachable, a wrong key, a URL that is not the API's base: exit 1, a message that says so.
python3 "$load" --url http://127.0.0.1:1/v1 $args >"$tmp/out" 2>&1; rc=$?
check "an unreachable server: exit 1, 'cannot reach'" sh -c "test $rc -eq 1 && grep -q 'cannot reach' '$tmp/out'"
python3 "$load" --url "$url/v1" --api-key wrong $args >"$tmp/out" 2>&1; rc=$?
check "a wrong key: exit 1, HTTP 401 from GET /models" sh -c "test $rc -eq 1 && grep -q 'models: HTTP 401' '$tmp/out'"
python3 "$load" --url "$url/v1" --api-key wrong --model m --requests 2 --max-tokens 1 --rates 0 --data "$cnn" \
    >"$tmp/wrong.jsonl" 2>"$tmp/out"; rc=$?
check "a wrong key with --model: every request fails, counted as 401, exit 1" sh -c "test $rc -eq 1 && python3 -c '
import json,sys; o=json.loads(open(sys.argv[1]).read()); assert o[\"ok\"]==0 and o[\"errors\"]=={\"401\": 2}, o' '$tmp/wrong.jsonl'"

# The run: the server's counters before and after, the JSON lines checked against them. /metrics is
# scraped every 20 ms: at rate 2 a request runs ~0.1-0.3 s between 0.5 s gaps, so the default 0.25 s scrape
# could miss every one of them (peak 0: seen on an idle 2-core machine).
curl -s "$url/metrics" >"$tmp/m0"
python3 "$load" --url "$url/v1" --api-key "$key" $args --rates 0,2 --scrape-interval 0.02 --json "$tmp/load.json" >"$tmp/load.jsonl" \
    2>"$tmp/load.err"; rc=$?
cat "$tmp/load.err"
cat "$tmp/load.jsonl"
check "serve_load.py --rates 0,2: exit 0" test "$rc" -eq 0
check "--json FILE holds the lines printed" cmp -s "$tmp/load.json" "$tmp/load.jsonl"
curl -s "$url/metrics" >"$tmp/m1"
# The stream duet bench --serve replays with the same seed, rates and max_tokens (its generated tokens are
# exactly the sum of the max_tokens drawn: no stop id in process).
"$duet" bench --serve -m "$model" --data "$cnn" -n 4 --max-tokens 2,4 --max-input 16 --rates 0,2 --no-static \
    >"$tmp/bench.jsonl" 2>"$tmp/bench.err"
check "duet bench --serve, the same stream in process: exit 0" test $? -eq 0
# loadcheck WHAT EXPR: a check over r (the load lines), b (the bench lines), m0 and m1 (the counters).
loadcheck() { what=$1; shift; check "$what" python3 -c '
import json, sys
def lines(p): return [json.loads(l) for l in open(p) if l.strip()]
def prom(p):
    out = {}
    for l in open(p):
        if l.strip() and not l.startswith("#"):
            k, v = l.rsplit(" ", 1); out[k] = float(v)
    return out
r, b, m0, m1 = lines(sys.argv[1]), lines(sys.argv[2]), prom(sys.argv[3]), prom(sys.argv[4])
d = lambda k: m1[k] - m0[k]
ok = eval(sys.argv[5])
if not ok: print("  not true:", sys.argv[5], file=sys.stderr)
sys.exit(0 if ok else 1)' "$tmp/load.jsonl" "$tmp/bench.jsonl" "$tmp/m0" "$tmp/m1" "$1"; }
loadcheck "one line per rate, target server, the rates in order" \
    '[(o["bench"], o["target"], o["rate"], o["requests"]) for o in r] == [("serve", "server", 0.0, 4), ("serve", "server", 2.0, 4)]'
loadcheck "every request succeeded" 'all(o["ok"] == 4 and o["errors"] == {} for o in r)'
loadcheck "tokens counted from the usage duet serve sends" 'all(o["tokens_counted"] == "usage" for o in r)'
loadcheck "the finish reasons add up to the requests" 'all(sum(o["finish_reasons"].values()) == 4 for o in r)'
loadcheck "generated <= the max_tokens drawn; = when every request stopped at its length" \
    'all(0 < o["generated"] <= o["max_tokens_sum"] and (o["finish_reasons"].get("length") != 4 or o["generated"] == o["max_tokens_sum"]) for o in r)'
loadcheck "the max_tokens drawn = duet bench --serve's generated for the same seed, per rate" \
    '[o["max_tokens_sum"] for o in r] == [o["generated"] for o in b] and len(b) == 2'
loadcheck "the server's duet_generation_tokens_total moved by the generated tokens" \
    'd("duet_generation_tokens_total") == sum(o["generated"] for o in r)'
loadcheck "the server's duet_prompt_tokens_total moved by the prompt tokens of the usage" \
    'd("duet_prompt_tokens_total") == sum(o["prompt_tokens"] for o in r) > 0'
loadcheck "the server's finished requests moved by 8, by reason as the replies said" \
    'all(d("duet_requests_finished_total{reason=\"%s\"}" % w) == sum(o["finish_reasons"].get(w, 0) for o in r) for w in ("length", "stop")) and sum(d("duet_requests_finished_total{reason=\"%s\"}" % w) for w in ("length", "stop")) == 8'
loadcheck "the server's TTFT histogram counted every request" 'd("duet_time_to_first_token_seconds_count") == 8'
loadcheck "peak KV blocks in use: seen, at most the pool (duet_kv_blocks_total)" \
    'all(1 <= o["peak_kv_blocks"] <= o["kv_blocks"] == m1["duet_kv_blocks_total"] for o in r)'
loadcheck "latencies: positive, p50 <= p99, tok/s = generated / wall" \
    'all(0 < o["ttft_p50_s"] <= o["ttft_p99_s"] <= o["e2e_p99_s"] and 0 < o["itl_p50_s"] <= o["itl_p99_s"] and abs(o["tok_s"] * o["wall_s"] - o["generated"]) < 1e-6 * o["generated"] for o in r)'

# Chat: the article as the user's message.
python3 "$load" --url "$url/v1" --api-key "$key" --data "$cnn" --endpoint chat --requests 2 --max-tokens 2 \
    --max-input-chars 100 --rates 0 >"$tmp/chat.jsonl" 2>"$tmp/chat.err"; rc=$?
check "--endpoint chat: exit 0, both requests answered with tokens from the usage" sh -c "test $rc -eq 0 && python3 -c '
import json,sys; o=json.loads(open(sys.argv[1]).read())
assert o[\"endpoint\"]==\"chat\" and o[\"ok\"]==2 and o[\"tokens_counted\"]==\"usage\" and 0<o[\"generated\"]<=4, o' '$tmp/chat.jsonl'"

kill -TERM $pid
wait $pid
check "the server exits 0 after SIGTERM" test $? -eq 0
[ $fail -ne 0 ] && tail -n 20 "$tmp/server.err"
exit $fail
