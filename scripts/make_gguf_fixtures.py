#!/usr/bin/env python3
"""make_gguf_fixtures.py: the gguf-py side of tests/test_gguf.c, under tests/data/gguf/.

1. gguf_py.gguf: a small file written by the `gguf` Python package's GGUFWriter (every value type,
   arrays of integers, floats and strings, tensors F32, F16, Q8_0, Q4_1, Q4_K, I32), and
   gguf_py.json: what it holds (each kv's type and value; each tensor's GGML type, row-major shape
   and its values as gguf.quants.dequantize gives them, as fp32 bit patterns) for duet's reader to match
   (UINT64 values as decimal strings, since JSON readers stop at INT64_MAX).
2. duet_written.json: what gguf-py's GGUFReader reads from duet_written.gguf, the file that duet's
   writer makes (tests/test_gguf --write-fixture tests/data/gguf/duet_written.gguf); the test
   rewrites that file byte for byte and checks that duet's reader sees what gguf-py saw.
3. With --model PATH: smollm2_q4_1.json, facts of the default model (SmolLM2-135M-Instruct Q4_1 GGUF)
   with its sha256 (the test skips when the file differs): tensor count, types, token_embd's shape,
   and gguf-py's dequantized token_embd.weight row 0 and blk.0.attn_q.weight rows 0, 1 and 575.

Run from the source tree: python3 scripts/make_gguf_fixtures.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import hashlib
import json
import os

import numpy as np
import gguf
import gguf.quants
from gguf import GGMLQuantizationType as T, GGUFValueType as V

OUT = os.path.join("tests", "data", "gguf")
SEED = 20250611


def bits(x):
    return [int(b) for b in np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)]


def field_json(f):
    """One kv pair as GGUFReader reads it."""
    t = f.types[0]
    d = {"key": f.name, "type": t.name}
    if t == V.ARRAY:
        d["elem"] = f.types[1].name
        vals = [f.parts[i] for i in f.data]
        if f.types[1] == V.STRING:
            d["value"] = [bytes(v).decode("utf-8") for v in vals]
        elif f.types[1] in (V.FLOAT32, V.FLOAT64):
            d["value"] = [float(v[0]) for v in vals]
        elif f.types[1] == V.UINT64:
            d["value"] = [str(int(v[0])) for v in vals]
        else:
            d["value"] = [int(v[0]) for v in vals]
    elif t == V.STRING:
        d["value"] = bytes(f.parts[f.data[0]]).decode("utf-8")
    elif t in (V.FLOAT32, V.FLOAT64):
        d["value"] = float(f.parts[f.data[0]][0])
    elif t == V.UINT64:  # as a decimal string: JSON readers (jansson) stop at INT64_MAX
        d["value"] = str(int(f.parts[f.data[0]][0]))
    else:
        d["value"] = int(f.parts[f.data[0]][0])
    return d


def tensor_json(t):
    d = {"name": t.name, "type": t.tensor_type.name, "ne": [int(n) for n in t.shape],
         "shape": [int(n) for n in reversed(t.shape)]}
    if t.tensor_type in (T.I8, T.I16, T.I32, T.I64):
        d["ints"] = [int(v) for v in np.asarray(t.data).reshape(-1)]
    else:
        d["f32_bits"] = bits(gguf.quants.dequantize(t.data, t.tensor_type))
    return d


def describe(path):
    r = gguf.GGUFReader(path)
    kv = [field_json(f) for name, f in r.fields.items() if not name.startswith("GGUF.")]
    return {"alignment": int(r.alignment), "kv": kv, "tensors": [tensor_json(t) for t in r.tensors]}


def write_gguf_py(path):
    rng = np.random.default_rng(SEED)
    w = gguf.GGUFWriter(path, arch="duettest")
    w.add_key_value("test.u8", 200, V.UINT8)
    w.add_key_value("test.i8", -100, V.INT8)
    w.add_key_value("test.u16", 60000, V.UINT16)
    w.add_key_value("test.i16", -30000, V.INT16)
    w.add_key_value("test.u32", 4000000000, V.UINT32)
    w.add_key_value("test.i32", -2000000000, V.INT32)
    w.add_key_value("test.f32", 0.1, V.FLOAT32)
    w.add_key_value("test.bool", True, V.BOOL)
    w.add_key_value("test.str", "héllo, GGUF", V.STRING)
    w.add_key_value("test.u64", 2 ** 63 + 5, V.UINT64)  # does not fit int64: gguf_get_int refuses it
    w.add_key_value("test.i64", -(2 ** 62) - 3, V.INT64)
    w.add_key_value("test.f64", 1.0 / 3.0, V.FLOAT64)
    w.add_key_value("test.arr_i32", [1, -2, 3, 2 ** 31 - 1], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.arr_u8", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.arr_f32", [0.5, -1.25, 3.0e-8], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.arr_str", ["a", "", "ünïcode ✓", "<|im_start|>"], V.ARRAY, sub_type=V.STRING)
    w.add_tensor("f32", rng.standard_normal((3, 4)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((2, 8)).astype(np.float16))
    w.add_tensor("q8_0", gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), T.Q8_0),
                 raw_dtype=T.Q8_0)
    w.add_tensor("q4_1", gguf.quants.quantize(rng.standard_normal((4, 32)).astype(np.float32), T.Q4_1),
                 raw_dtype=T.Q4_1)
    blk = rng.integers(0, 256, (1, 144), dtype=np.uint8)
    blk[0, 0:4] = np.frombuffer(np.array([0.01, 0.002], dtype=np.float16).tobytes(), np.uint8)
    w.add_tensor("q4_k", blk, raw_dtype=T.Q4_K)
    w.add_tensor("i32", np.arange(-3, 5, dtype=np.int32).reshape(2, 4))
    w.add_tensor("vec", rng.standard_normal(5).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def model_facts(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    r = gguf.GGUFReader(path)
    types = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    byname = {t.name: t for t in r.tensors}
    emb, q = byname["token_embd.weight"], byname["blk.0.attn_q.weight"]
    emb_rows = gguf.quants.dequantize(emb.data[0:1], emb.tensor_type)
    q_all = gguf.quants.dequantize(q.data, q.tensor_type)
    rows = [{"tensor": "token_embd.weight", "type": emb.tensor_type.name, "row": 0, "f32_bits": bits(emb_rows[0])}]
    for i in (0, 1, 575):
        rows.append({"tensor": "blk.0.attn_q.weight", "type": q.tensor_type.name, "row": i, "f32_bits": bits(q_all[i])})
    return {"file": os.path.basename(path), "sha256": h.hexdigest(), "n_tensors": len(r.tensors), "types": types,
            "token_embd_shape": [int(n) for n in reversed(emb.shape)], "rows": rows}


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="the default model, for smollm2_q4_1.json")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    p = os.path.join(OUT, "gguf_py.gguf")
    write_gguf_py(p)
    dump(describe(p), os.path.join(OUT, "gguf_py.json"))
    d = os.path.join(OUT, "duet_written.gguf")
    if os.path.exists(d):
        dump(describe(d), os.path.join(OUT, "duet_written.json"))
    else:
        print(f"{d} is absent: make it with tests/test_gguf --write-fixture {d}, then run this again")
    if a.model:
        dump(model_facts(a.model), os.path.join(OUT, "smollm2_q4_1.json"))


if __name__ == "__main__":
    main()
