#!/usr/bin/env python3
"""serve_client.py: drives a running `duet serve` for tests/test_serve.sh with the official `openai`
client (PyPI) and, where the client cannot, with http.client. Every check prints PASS:/FAIL: as
cli_lib.sh's check does; the exit status is 1 when any failed.

  serve_client.py URL KEY openai PROMPT QUESTION N OUT.json
      completions and chat, streamed and not, greedy with max_tokens N; checks the shapes, that the
      streamed text equals the whole reply, and the client's errors (wrong key, unknown model, a bad
      max_tokens); writes {"completion": text, "chat": text} to OUT.json for the comparison with
      `duet generate`
  serve_client.py URL KEY busy MAX
      MAX streams held open, then one more request is refused with 429; the streams are dropped mid-way
      (their requests are cancelled) and a request after them is served
  serve_client.py URL KEY drain PID
      a keep-alive connection is opened, a request is started, SIGTERM goes to PID: the running request
      still ends with all its tokens, the kept-alive connection's next request gets 503
"""
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

import openai

failed = False


def check(what, ok):
    global failed
    print(("PASS: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failed = True


def client(url, key, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120, **kw)


def model_id(c):
    models = c.models.list().data
    check("/v1/models lists one model", len(models) == 1 and models[0].object == "model")
    return models[0].id


def run_openai(url, key, prompt, question, n, out_path):
    c = client(url, key)
    model = model_id(c)

    r = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0)
    ch = r.choices[0]
    check("completion: object, model, one choice", r.object == "text_completion" and r.model == model and len(r.choices) == 1)
    check("completion: finish_reason stop or length", ch.finish_reason in ("stop", "length"))
    check("completion: usage adds up", r.usage.completion_tokens >= 1 and r.usage.prompt_tokens >= 1 and
          r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens)
    check("completion: max_tokens reached means finish_reason length",
          (ch.finish_reason == "length") == (r.usage.completion_tokens == n))
    text = ch.text

    parts, finish = [], None
    for chunk in c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0, stream=True):
        parts.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    check("streamed completion: the chunks join to the whole reply's text", "".join(parts) == text)
    check("streamed completion: more than one chunk, finish_reason in the last", len(parts) > 1 and finish == ch.finish_reason)

    msgs = [{"role": "user", "content": question}]
    r = c.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=0)
    ch = r.choices[0]
    check("chat: object, role assistant, finish_reason", r.object == "chat.completion" and ch.message.role == "assistant"
          and ch.finish_reason in ("stop", "length"))
    check("chat: usage adds up", r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens)
    chat = ch.message.content

    parts, roles, finish, usage = [], [], None, None
    for chunk in c.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        check_obj = chunk.object == "chat.completion.chunk"
        if not check_obj:
            check("streamed chat: chunk object", False)
        if chunk.usage:
            usage = chunk.usage
        for cc in chunk.choices:
            if cc.delta.role:
                roles.append(cc.delta.role)
            if cc.delta.content:
                parts.append(cc.delta.content)
            finish = cc.finish_reason or finish
    check("streamed chat: role assistant first, the deltas join to the whole reply", roles == ["assistant"] and
          "".join(parts) == chat)
    check("streamed chat: finish_reason, and usage in the last chunk", finish == ch.finish_reason and usage is not None
          and usage.completion_tokens == r.usage.completion_tokens)

    # Sampled with a seed: the same seed gives the same text.
    a = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=1, top_p=0.9, seed=7).choices[0].text
    b = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=1, top_p=0.9, seed=7).choices[0].text
    check("seeded sampling: same seed, same text", a == b)

    # The client's own errors.
    try:
        client(url, "wrong-key").completions.create(model=model, prompt=prompt, max_tokens=1)
        check("wrong API key: AuthenticationError", key is None)
    except openai.AuthenticationError as e:
        check("wrong API key: AuthenticationError (401) with the error shape", e.status_code == 401 and
              e.body.get("code") == "invalid_api_key")
    try:
        c.chat.completions.create(model="no-such-model", messages=msgs, max_tokens=1)
        check("unknown model: NotFoundError", False)
    except openai.NotFoundError as e:
        check("unknown model: NotFoundError (404), param model", e.status_code == 404 and e.body.get("param") == "model")
    try:
        c.completions.create(model=model, prompt=prompt, max_tokens=-5)
        check("negative max_tokens: BadRequestError", False)
    except openai.BadRequestError as e:
        check("negative max_tokens: BadRequestError (400), param max_tokens", e.status_code == 400 and
              e.body.get("param") == "max_tokens")
    r = c.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0)
    check("after the errors, the same request gives the same text", r.choices[0].text == text)
    with open(out_path, "w") as f:
        json.dump({"completion": text, "chat": chat}, f)


def run_busy(url, key, limit):
    c = client(url, key)
    model = model_id(c)
    streams = []
    for i in range(limit):
        s = c.completions.create(model=model, prompt="Once upon a time", max_tokens=200, temperature=0, stream=True)
        next(iter(s))  # the first chunk: it is running
        streams.append(s)
    try:
        c.completions.create(model=model, prompt="Hi", max_tokens=1)
        check(f"request {limit + 1} over --max-concurrent {limit}: RateLimitError", False)
    except openai.RateLimitError as e:
        check(f"request {limit + 1} over --max-concurrent {limit}: 429 with the error shape", e.status_code == 429 and
              e.body.get("type") == "rate_limit_error")
    for s in streams:
        s.close()  # the client goes away mid-stream
    # The server notices within a poll interval and cancels; then a request gets through.
    deadline = time.time() + 30
    while True:
        try:
            r = c.completions.create(model=model, prompt="Hi", max_tokens=2, temperature=0)
            check("after the dropped streams, a request is served", r.choices[0].finish_reason in ("stop", "length"))
            break
        except openai.RateLimitError:
            if time.time() > deadline:
                check("after the dropped streams, a request is served", False)
                break
            time.sleep(0.05)


def run_drain(url, key, pid):
    u = urllib.parse.urlparse(url)
    hdr = {"Content-Type": "application/json"}
    if key:
        hdr["Authorization"] = "Bearer " + key
    kept = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    kept.request("GET", "/health")
    r = kept.getresponse()
    check("keep-alive connection: /health 200 before SIGTERM", r.status == 200)
    r.read()
    result = {}

    def long_request():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        conn.request("POST", "/v1/completions", json.dumps({"prompt": "Once upon a time", "max_tokens": 40,
                                                            "temperature": 0, "ignore": "unknown fields"}), hdr)
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = json.loads(resp.read())

    t = threading.Thread(target=long_request)
    t.start()
    # Wait until it runs (the metrics say so), then ask the server to stop.
    deadline = time.time() + 30
    while time.time() < deadline:
        m = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        m.request("GET", "/metrics")
        text = m.getresponse().read().decode()
        m.close()
        if "duet_requests_running 1" in text:
            break
        time.sleep(0.02)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    kept.request("POST", "/v1/completions", json.dumps({"prompt": "Hi", "max_tokens": 1}), hdr)
    r = kept.getresponse()
    body = json.loads(r.read())
    check("while draining: a new request on an open connection gets 503 with the error shape",
          r.status == 503 and body["error"]["code"] == "draining")
    t.join()
    body = result.get("body", {})
    check("the request running at SIGTERM finishes: 200, all 40 tokens", result.get("status") == 200 and
          body.get("usage", {}).get("completion_tokens") == 40 and body["choices"][0]["finish_reason"] == "length")


def main():
    url, key, what = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    if what == "openai":
        run_openai(url, key, sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7])
    elif what == "busy":
        run_busy(url, key, int(sys.argv[4]))
    elif what == "drain":
        run_drain(url, key, int(sys.argv[4]))
    else:
        sys.exit("serve_client.py: unknown check " + what)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
