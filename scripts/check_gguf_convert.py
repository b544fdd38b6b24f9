#!/usr/bin/env python3
"""check_gguf_convert.py: checks a GGUF written by `duet convert` with the `gguf` package's GGUFReader,
independently of duet's reader: the llama.* keys llama.cpp needs, the tokenizer arrays, llama.cpp's
tensor names and shapes, and, given the Hugging Face folder it came from (--hf DIR, one
model.safetensors of F32/F16/BF16), every tensor's values against the folder's, with q/k rows
permuted here in numpy as llama.cpp's converter permutes them.

  python3 scripts/check_gguf_convert.py OUT.gguf [--hf DIR]
Prints what it found and 'OK', or the first problem and exits 1.
"""
import argparse
import json
import struct
import sys

import numpy as np
import gguf

REQUIRED = ["general.architecture", "llama.context_length", "llama.embedding_length",
            "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
            "llama.rope.freq_base", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type"]
LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
         "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def value(r, key):
    f = r.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]][0]


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if t["dtype"] == "BF16":
            x = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            x = np.frombuffer(buf, {"F32": np.float32, "F16": np.float16}[t["dtype"]]).astype(np.float32)
        out[name] = x.reshape(t["shape"])
    return out


def permute(w, heads):
    """HF rows -> llama.cpp rows: per head, the two halves interleaved."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--hf")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf)
    for k in REQUIRED:
        if k not in r.fields:
            fail(f"missing key {k}")
    arch, model = value(r, "general.architecture"), value(r, "tokenizer.ggml.model")
    L, H = int(value(r, "llama.block_count")), int(value(r, "llama.attention.head_count"))
    Hk = int(value(r, "llama.attention.head_count_kv"))
    ntok = len(r.fields["tokenizer.ggml.tokens"].data)
    print(f"{a.gguf}: GGUF v{value(r, 'GGUF.version')}, {len(r.fields)} keys, {len(r.tensors)} tensors; "
          f"architecture {arch}, {L} layers, {H} heads / {Hk} kv heads, tokenizer {model} with {ntok} tokens")
    for k in ["tokenizer.ggml.token_type", "tokenizer.ggml.scores"]:
        if k in r.fields and len(r.fields[k].data) != ntok:
            fail(f"{k}: {len(r.fields[k].data)} entries for {ntok} tokens")
    if model == "gpt2" and "tokenizer.ggml.merges" not in r.fields:
        fail("gpt2 tokenizer without tokenizer.ggml.merges")
    if model == "llama" and "tokenizer.ggml.scores" not in r.fields:
        fail("llama tokenizer without tokenizer.ggml.scores")
    names = {t.name: t for t in r.tensors}
    want = ["token_embd.weight", "output_norm.weight"] + \
        [f"blk.{l}.{p}.weight" for l in range(L) for p in LAYER]
    for n in want:
        if n not in names:
            fail(f"missing tensor {n}")
    extra = set(names) - set(want) - {"output.weight"}
    if extra:
        fail(f"unexpected tensors {sorted(extra)}")
    types = sorted({t.tensor_type.name for t in r.tensors})
    print(f"tensors: llama.cpp names, {'with' if 'output.weight' in names else 'no'} output.weight, types {types}")
    if not a.hf:
        print("OK")
        return
    hf = read_safetensors(f"{a.hf}/model.safetensors")
    pairs = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    for l in range(L):
        for p, q in LAYER.items():
            pairs[f"blk.{l}.{p}.weight"] = f"model.layers.{l}.{q}.weight"
    checked = 0
    for g, h in pairs.items():
        if g not in names:
            continue
        t = names[g]
        x = gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(n) for n in reversed(t.shape)])
        y = hf[h]
        if ".attn_q." in g:
            y = permute(y, H)
        elif ".attn_k." in g:
            y = permute(y, Hk)
        if x.shape != y.shape or not np.array_equal(x.view(np.uint32), y.astype(np.float32).view(np.uint32)):
            fail(f"{g}: values differ from {h} (shapes {x.shape} and {y.shape})")
        checked += 1
    print(f"{checked} tensors equal the folder's bit for bit (q/k permuted as llama.cpp does)")
    print("OK")


if __name__ == "__main__":
    main()
