#!/usr/bin/env python3
"""gguf_dequant_check.py: checks a GGUF written by `duet quantize` with the `gguf` package (gguf-py),
independently of duet's reader and dequantizers:

  python3 tests/gguf_dequant_check.py OUT.gguf DUET_DIR [--source SRC_DIR]

DUET_DIR is `duet convert OUT.gguf DUET_DIR`: every weight as duet loads and dequantizes it, F32, q/k in
Hugging Face row order. For every tensor of OUT.gguf, gguf.quants.dequantize of its data (GGUFReader),
q/k rows un-permuted here as llama.cpp's converter permuted them, must equal DUET_DIR's values bit for
bit: the values duet's ref backend computes with. With --source SRC_DIR (`duet convert` of the model that
was quantized, F32), gguf.quants.quantize of each source linear weight must also give OUT.gguf's blocks
byte for byte (duet's quantizer is llama.cpp's reference rounding, as gguf-py reproduces it).
Prints a line per tensor type and 'OK', or the first problem and exits 1.
"""
import argparse
import json
import struct
import sys

import numpy as np
import gguf
from gguf import quants

LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
         "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj"}
TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
       "output.weight": "lm_head.weight"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            fail(f"{path}: {name} is {info['dtype']}, need F32 for a bit-exact comparison")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
    return out


def field(r, key):
    f = r.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]][0]


def hf_name(name):
    if name in TOP:
        return TOP[name]
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in LAYER and parts[3] == "weight":
        return f"model.layers.{parts[1]}.{LAYER[parts[2]]}.weight"
    fail(f"unexpected tensor {name}")


def unpermute(w, heads):
    """GGUF row h*d + 2i + j holds HF row h*d + j*d/2 + i (llama.cpp's q/k permutation)."""
    rows = w.shape[0]
    d = rows // heads
    return w.reshape(heads, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute(w, heads):
    rows = w.shape[0]
    d = rows // heads
    return w.reshape(heads, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_file")
    ap.add_argument("duet_dir")
    ap.add_argument("--source")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf_file)
    heads = int(field(r, "llama.attention.head_count"))
    kv_heads = int(field(r, "llama.attention.head_count_kv"))
    duet = read_safetensors(a.duet_dir + "/model.safetensors")
    src = read_safetensors(a.source + "/model.safetensors") if a.source else None
    seen = {}
    requant = 0
    for t in r.tensors:
        name = hf_name(t.name)
        # GGUF lists dims innermost first
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        vals = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        h = heads if ".attn_q." in t.name else kv_heads if ".attn_k." in t.name else 0
        if h:
            vals = unpermute(vals, h)
        if name not in duet:
            fail(f"{t.name}: {name} missing from {a.duet_dir}")
        want = duet[name]
        if want.shape != vals.shape:
            fail(f"{t.name}: shape {vals.shape}, duet's {want.shape}")
        bad = np.count_nonzero(vals.view(np.uint32) != want.view(np.uint32))
        if bad:
            fail(f"{t.name} ({t.tensor_type.name}): {bad} of {vals.size} values differ from duet's")
        tname = t.tensor_type.name
        seen[tname] = seen.get(tname, 0) + 1
        if src is not None and t.name.startswith("blk.") and tname in ("Q8_0", "Q4_0", "Q4_1"):
            w = src[name]
            if h:
                w = permute(w, h)
            blocks = quants.quantize(np.ascontiguousarray(w, dtype=np.float32), t.tensor_type)
            got = np.asarray(t.data, dtype=np.uint8).reshape(-1)
            if blocks.reshape(-1).tobytes() != got.tobytes():
                fail(f"{t.name}: gguf.quants.quantize of the source gives other {tname} blocks than duet's")
            requant += 1
    for k, v in sorted(seen.items()):
        print(f"{k}: {v} tensors equal duet's values bit for bit")
    if src is not None:
        print(f"{requant} linear weights: gguf.quants.quantize of the source = duet's blocks byte for byte")
    print("OK")


if __name__ == "__main__":
    main()
