#!/usr/bin/env python3
"""serve_load.py: a load generator against a running `duet serve` (or any OpenAI-compatible server), the
over-HTTP half of `duet bench --serve` (cli/cmd_bench_serve.c, which drives the scheduler in process).

cnn_dailymail articles (cut at --max-input-chars characters: the server tokenizes) are sent as streamed,
greedy completions (or chat messages) with the official `openai` client's AsyncOpenAI, arriving as a
Poisson process at each --rates value (0: all at once), max_tokens drawn per request from --max-tokens.
The arrivals and the max_tokens draws are those of `duet bench --serve --seed S` (the same counter-based
RNG, common/rng.h, drawn in the same order), so the two halves replay the same stream.

Per rate: generated tokens/s (counted from the `usage` the server sends at the end of each stream when
asked with stream_options.include_usage, else one token per text chunk: "tokens_counted" says which),
time to first token (from the request's scheduled arrival), inter-token latency (the gaps between text
chunks: duet serve sends one per token unless the engine is ahead of the client, then one chunk carries
the tokens made meanwhile), end-to-end latency p99 (to the last text chunk), errors by HTTP status, and the peak of the server's KV blocks in use
(duet_kv_blocks_used, scraped from GET /metrics every --scrape-interval seconds while the rate runs).
One JSON object per line on stdout (and --json FILE; the key names of `duet bench --serve` where they
mean the same, plus "target": "server"), a table on stderr.

Exit status: 0 when every rate ran (failed requests are counted in "errors", not fatal); 1 when the
server cannot be used (unreachable, not OpenAI-compatible, the data missing) or every request of a rate
failed; 2 for bad flags.

  duet serve --port 8000 &
  python3 scripts/serve_load.py --url http://127.0.0.1:8000/v1 --requests 16 --rates 0,2 --max-tokens 8,16
"""
import argparse
import asyncio
import json
import math
import os
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import openai
except ImportError:  # the message, not a traceback
    sys.exit("serve_load.py: the openai Python package is not installed (pip install openai)")

M64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finaliser (common/rng.h duet_mix64)."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rng_uniform(seed, counter):
    """duet_rng_uniform: element `counter` of stream `seed`, uniform in [0, 1) with 24 bits."""
    return (mix64(mix64(seed) ^ counter) >> 40) / 16777216.0


def f32(x):
    """x rounded to the nearest float (C's float arithmetic)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def schedule(n, rate, max_tokens, seed):
    """(arrival seconds, max_tokens) per request, drawn as cmd_bench_serve.c draws them (u * n_mt is a float
    product there; 1 - u and the logarithm are double)."""
    out, draw, t = [], 0, 0.0
    for _ in range(n):
        u = rng_uniform(seed, draw)
        draw += 1
        mt = max_tokens[min(int(f32(u * len(max_tokens))), len(max_tokens) - 1)]
        if rate > 0:
            v = 1.0 - rng_uniform(seed, draw)  # (0, 1]
            draw += 1
            t += -math.log(v) / rate
        out.append((t, mt))
    return out


def pct(v, p):
    """The p-quantile as cmd_bench_serve.c's pct: the ceil(p n)-th smallest; None without samples."""
    if not v:
        return None
    v = sorted(v)
    return v[min(max(math.ceil(p * len(v)) - 1, 0), len(v) - 1)]


def num_list(kind, lo):
    def parse(s):
        try:
            xs = [kind(x) for x in s.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not a comma-separated list of {kind.__name__}s")
        if not xs or any(not (x >= lo) or (isinstance(x, float) and math.isinf(x)) for x in xs):
            raise argparse.ArgumentTypeError(f"'{s}': every value must be a finite number >= {lo}")
        return xs
    return parse


def positive_int(s):
    try:
        x = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not an integer")
    if x < 1:
        raise argparse.ArgumentTypeError(f"'{s}' must be at least 1")
    return x


def positive_float(s):
    try:
        x = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a number")
    if not (x > 0) or math.isinf(x):
        raise argparse.ArgumentTypeError(f"'{s}' must be a positive number")
    return x


def default_data():
    d = os.environ.get("DUET_DATA") or "../shared/data"
    return os.path.join(d, "cnn_dailymail", "test_100.jsonl")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="serve_load.py",
        description="Replays cnn_dailymail prompts with Poisson arrivals against a running OpenAI-compatible "
        "server (duet serve): generated tokens/s, TTFT and inter-token latency p50/p99, end-to-end p99, "
        "errors by status, peak KV blocks (from /metrics). One JSON object per line on stdout, a table on stderr.",
        epilog="example: python3 scripts/serve_load.py --url http://127.0.0.1:8000/v1 --requests 16 --rates 0,2 "
        "--max-tokens 8,16",
    )
    ap.add_argument("--url", default="http://127.0.0.1:8000/v1", help="the API's base URL (default %(default)s)")
    ap.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY") or "none",
                    help="sent as 'Authorization: Bearer KEY' (default $OPENAI_API_KEY, else 'none')")
    ap.add_argument("--model", help="the model name (default: the first of GET /v1/models)")
    ap.add_argument("--data", default=None,
                    help="cnn_dailymail JSON Lines (default $DUET_DATA/cnn_dailymail/test_100.jsonl, "
                    "else ../shared/data/cnn_dailymail/test_100.jsonl)")
    ap.add_argument("--requests", "-n", type=positive_int, default=32,
                    help="requests per rate (default 32; articles reused in order when N > items)")
    ap.add_argument("--rates", type=num_list(float, 0.0), default=[0.0],
                    help="arrival rates in requests/s, comma-separated; 0 = all at time 0 (default 0)")
    ap.add_argument("--max-tokens", type=num_list(int, 1), default=[16, 32, 64],
                    help="max_tokens drawn uniformly from this list per request (default 16,32,64)")
    ap.add_argument("--max-input-chars", type=positive_int, default=1000,
                    help="characters of each article at most (default 1000; the server tokenizes)")
    ap.add_argument("--endpoint", choices=["completions", "chat"], default="completions",
                    help="/v1/completions with the article as the prompt (default), or /v1/chat/completions "
                    "with it as the user's message")
    ap.add_argument("--seed", type=int, default=1, help="arrivals and max_tokens draws (default 1, as duet bench --serve)")
    ap.add_argument("--metrics-url", default=None,
                    help="Prometheus text to scrape for the KV blocks (default: --url without /v1, + /metrics; "
                    "'none' to skip)")
    ap.add_argument("--scrape-interval", type=positive_float, default=0.25,
                    help="seconds between scrapes of --metrics-url (default 0.25)")
    ap.add_argument("--timeout", type=positive_float, default=600.0, help="seconds per request at most (default 600)")
    ap.add_argument("--json", metavar="FILE", help="also write the JSON lines to FILE")
    a = ap.parse_args(argv)
    if a.seed < 0 or a.seed > M64:
        ap.error(f"argument --seed: {a.seed} is not in [0, 2^64)")
    p = urllib.parse.urlparse(a.url)
    if p.scheme not in ("http", "https") or not p.netloc:
        ap.error(f"argument --url: '{a.url}' is not an http:// or https:// URL")
    if a.metrics_url is None:
        base = a.url.rstrip("/")
        a.metrics_url = (base[:-3] if base.endswith("/v1") else base) + "/metrics"
    return a


def fail(msg):
    print(f"serve_load.py: {msg}", file=sys.stderr)
    sys.exit(1)


def load_articles(path, max_chars):
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        fail(f"--data {path}: {e.strerror} (give --data FILE or set DUET_DATA)")
    arts = []
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                a = json.loads(line)["article"]
            except (ValueError, KeyError, TypeError):
                fail(f"{path}:{i}: not a JSON object with a string 'article'")
            if not isinstance(a, str) or not a:
                fail(f"{path}:{i}: article: not a non-empty string")
            arts.append(a[:max_chars])
    if not arts:
        fail(f"{path}: no articles")
    return arts


# ---- /metrics -----------------------------------------------------------------------------------------

def scrape(url, timeout=5.0):
    """{name{labels}: value} of a Prometheus text page, or None when there is none at url."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            if r.status != 200:
                return None
            text = r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2:
            continue
        try:
            out[parts[0]] = float(parts[1])
        except ValueError:
            continue
    return out


class KvWatch:
    """Scrapes the server's /metrics in a thread every `interval` seconds while a rate runs: the peak of
    duet_kv_blocks_used, the pool's duet_kv_blocks_total, and the counters before and after."""

    def __init__(self, url, interval):
        self.url, self.interval = url, interval
        self.peak, self.total, self.first, self.last = None, None, None, None
        self.stop = asyncio.Event()

    def _take(self, m):
        if m is None:
            return
        if "duet_kv_blocks_used" in m:
            u = int(m["duet_kv_blocks_used"])
            self.peak = u if self.peak is None else max(self.peak, u)
        if "duet_kv_blocks_total" in m:
            self.total = int(m["duet_kv_blocks_total"])
        if self.first is None:
            self.first = m
        self.last = m

    async def run(self):
        if self.url == "none":
            return
        while True:
            self._take(await asyncio.to_thread(scrape, self.url))
            try:
                await asyncio.wait_for(self.stop.wait(), self.interval)
                break
            except asyncio.TimeoutError:
                pass
        self._take(await asyncio.to_thread(scrape, self.url))

    def delta(self, name):
        if not self.first or not self.last or name not in self.first or name not in self.last:
            return None
        return int(self.last[name] - self.first[name])


# ---- one request, one rate ----------------------------------------------------------------------------

class Result:
    def __init__(self, max_tokens):
        self.max_tokens = max_tokens
        self.times = []  # arrival of each text chunk, seconds after the rate's start
        self.usage = None  # (prompt_tokens, completion_tokens) when the server sent it
        self.finish = None
        self.error = None  # "HTTP 429", "connection", ... when it failed
        self.status = None  # its HTTP status, or a word


async def one(client, args, model, article, arrival, max_tokens, t0):
    r = Result(max_tokens)
    delay = t0 + arrival - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    common = dict(model=model, max_tokens=max_tokens, temperature=0, stream=True,
                  stream_options={"include_usage": True})
    try:
        if args.endpoint == "chat":
            stream = await client.chat.completions.create(messages=[{"role": "user", "content": article}], **common)
        else:
            stream = await client.completions.create(prompt=article, **common)
        async for ch in stream:
            now = time.perf_counter() - t0
            if getattr(ch, "usage", None) is not None and ch.usage.completion_tokens is not None:
                r.usage = (ch.usage.prompt_tokens, ch.usage.completion_tokens)
            choices = getattr(ch, "choices", None)
            if choices is None:
                raise ValueError(f"a stream chunk without 'choices': {ch!r:.200}")
            if not choices:
                continue
            c = choices[0]
            text = (c.delta.content if c.delta else None) if args.endpoint == "chat" else c.text
            if text:
                r.times.append(now)
            if c.finish_reason:
                r.finish = c.finish_reason
        r.status = 200
        if not r.times:
            r.error, r.status = "no tokens", "no_tokens"
    except openai.APIStatusError as e:
        r.error, r.status = f"HTTP {e.status_code}: {e.message}", e.status_code
    except openai.APITimeoutError:
        r.error, r.status = "timed out", "timeout"
    except openai.APIConnectionError as e:
        r.error, r.status = f"connection: {e.__cause__ or e}", "connection"
    except openai.APIError as e:  # an error event in the stream, a reply the client cannot parse
        r.error, r.status = f"{type(e).__name__}: {e.message}", "stream_error"
    except (ValueError, AttributeError, TypeError) as e:  # a reply not in OpenAI's shape
        r.error, r.status = f"not an OpenAI stream: {e}", "bad_reply"
    return r


async def run_rate(client, args, model, arts, rate):
    sched = schedule(args.requests, rate, args.max_tokens, args.seed)
    watch = KvWatch(args.metrics_url, args.scrape_interval)
    wt = asyncio.create_task(watch.run())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    tasks = [one(client, args, model, arts[i % len(arts)], at, mt, t0) for i, (at, mt) in enumerate(sched)]
    res = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    watch.stop.set()
    await wt
    ok = [(r, at) for r, (at, _) in zip(res, sched) if r.error is None]
    errors = {}
    for r in res:
        if r.error is not None:
            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
    by_usage = bool(ok) and all(r.usage is not None for r, _ in ok)
    gen = sum(r.usage[1] if by_usage else len(r.times) for r, _ in ok)
    ttft = [r.times[0] - at for r, at in ok]
    e2e = [r.times[-1] - at for r, at in ok]
    itl = [b - a for r, _ in ok for a, b in zip(r.times, r.times[1:])]
    finish = {}
    for r, _ in ok:
        finish[r.finish or "none"] = finish.get(r.finish or "none", 0) + 1
    o = {
        "bench": "serve", "target": "server", "url": args.url, "model": model, "endpoint": args.endpoint,
        "rate": rate, "requests": args.requests, "ok": len(ok), "errors": errors,
        "generated": gen, "tokens_counted": ("usage" if by_usage else "chunks") if ok else None,
        "prompt_tokens": sum(r.usage[0] for r, _ in ok) if by_usage else None,
        "max_tokens_sum": sum(mt for _, mt in sched), "finish_reasons": finish,
        "tok_s": gen / wall, "wall_s": wall,
        "ttft_p50_s": pct(ttft, 0.5), "ttft_p99_s": pct(ttft, 0.99),
        "itl_p50_s": pct(itl, 0.5), "itl_p99_s": pct(itl, 0.99), "e2e_p99_s": pct(e2e, 0.99),
        "peak_kv_blocks": watch.peak, "kv_blocks": watch.total, "preemptions": watch.delta("duet_preemptions_total"),
    }
    first_err = next((r.error for r in res if r.error is not None), None)
    return o, first_err


def table_row(o):
    def f(k, prec):
        return f"{'-':>9}" if o[k] is None else f"{o[k]:9.{prec}f}"
    kv = "-" if o["peak_kv_blocks"] is None else str(o["peak_kv_blocks"])
    err = sum(o["errors"].values())
    return (f"{o['rate']:7.2f} {o['tok_s']:8.1f} {f('ttft_p50_s', 3)} {f('ttft_p99_s', 3)} {f('itl_p50_s', 4)} "
            f"{f('itl_p99_s', 4)} {f('e2e_p99_s', 3)} {o['wall_s']:9.2f} {kv:>6} {o['ok']:5d} {err:5d}")


async def amain(args):
    arts = load_articles(args.data or default_data(), args.max_input_chars)
    client = openai.AsyncOpenAI(base_url=args.url, api_key=args.api_key, max_retries=0, timeout=args.timeout)
    try:
        model = args.model
        if model is None:
            where = f"GET {args.url.rstrip('/')}/models"
            try:
                raw = await client.models.with_raw_response.list()
            except openai.APIConnectionError as e:
                fail(f"cannot reach {args.url}: {e.__cause__ or e} (is the server running?)")
            except openai.APIStatusError as e:
                fail(f"{where}: HTTP {e.status_code}: {e.message}")
            try:
                model = json.loads(raw.text)["data"][0]["id"]
                if not isinstance(model, str) or not model:
                    raise ValueError
            except (ValueError, KeyError, IndexError, TypeError):
                kind = raw.headers.get("content-type", "no content type")
                fail(f"{where}: the reply ({kind}: {raw.text[:60]!r}) is not an OpenAI model list; "
                     "is --url the API's base (http://HOST:PORT/v1)? Or give --model")
        print(f"serve_load.py: {args.url}, model {model}, /{args.endpoint}; {args.requests} requests per rate, "
              f"articles cut at {args.max_input_chars} characters, max_tokens from "
              f"{{{','.join(map(str, args.max_tokens))}}}, seed {args.seed}", file=sys.stderr)
        print(f"{'rate':>7} {'tok/s':>8} {'ttft_p50':>9} {'ttft_p99':>9} {'itl_p50':>9} {'itl_p99':>9} {'e2e_p99':>9} "
              f"{'wall_s':>9} {'peakKV':>6} {'ok':>5} {'err':>5}", file=sys.stderr)
        jf = open(args.json, "w") if args.json else None
        rc = 0
        for rate in args.rates:
            o, first_err = await run_rate(client, args, model, arts, rate)
            print(table_row(o), file=sys.stderr)
            line = json.dumps(o, separators=(",", ":"))
            print(line, flush=True)
            if jf:
                print(line, file=jf, flush=True)
            if first_err is not None:
                print(f"serve_load.py: rate {rate:g}: {args.requests - o['ok']} requests failed; the first: {first_err}",
                      file=sys.stderr)
            if o["ok"] == 0:
                rc = 1
        if jf:
            jf.close()
        how = {"usage": "from the usage the server sent",
               "chunks": "as one per text chunk (the server sent no usage)"}.get(o["tokens_counted"])
        if how:
            print(f"serve_load.py: generated tokens counted {how}", file=sys.stderr)
        return rc
    finally:
        await client.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.json:
        try:
            open(args.json, "w").close()
        except OSError as e:
            print(f"serve_load.py: --json {args.json}: {e.strerror}", file=sys.stderr)
            return 1
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
