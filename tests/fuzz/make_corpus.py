#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py: writes the seed corpus of the libFuzzer harnesses, tests/fuzz/corpus/<name>/:
small valid inputs (and a few near misses) made here or copied from tests/data and golden/. Run from
the source tree's root; the output is committed (keep it small: a few KB a harness)."""
import json, os, shutil, struct

OUT = "tests/fuzz/corpus"


def put(name, fname, data):
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    with open(f"{OUT}/{name}/{fname}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(name, src, fname=None):
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    shutil.copy(src, f"{OUT}/{name}/{fname or os.path.basename(src)}")


def safetensors(tensors, meta=None):
    """tensors: [(name, dtype, shape, raw bytes)]; the header padded with spaces to 8 bytes, as duet writes."""
    hdr, off, data = {}, 0, b""
    if meta:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)

# safetensors: every dtype family, metadata, an empty tensor, an empty header.
put("safetensors", "f32_f16_bf16.st", safetensors(
    [("a", "F32", [2, 2], f32(1, 2, 3, 4)), ("b", "F16", [3], struct.pack("<3H", 0x3C00, 0x8001, 0x7C00)),
     ("c", "BF16", [1, 2], struct.pack("<2H", 0x3F80, 0xFFC1))], {"format": "pt"}))
put("safetensors", "ints.st", safetensors(
    [("i8", "I8", [4], b"\x01\x02\x03\x04"), ("u8", "U8", [2, 1], b"\xff\x00"), ("i64", "I64", [1], struct.pack("<q", -1)),
     ("b", "BOOL", [2], b"\x00\x01"), ("e", "F32", [0, 3], b""), ("f8", "F8_E4M3", [], b"\x38"),
     ("d", "F64", [1], struct.pack("<d", 0.5)), ("i16", "I16", [1], b"\x00\x80"), ("i32", "I32", [1], b"\x00\x00\x00\x80")]))
put("safetensors", "empty.st", safetensors([]))
put("safetensors", "meta_only.st", safetensors([], {"duet_synth": "x", "k": "v"}))

# tapfile: golden-shaped files (2-D F32 taps in forward order, duet's metadata keys).
meta = {"model_id": "mha", "model_sha256": "0" * 64, "token_ids": "1,2,3", "mode": "fp32", "backend": "ref",
        "threads": "1", "blas": "openblas", "duet_version": "0.1.0"}
put("tapfile", "golden_like.st", safetensors(
    [("embed", "F32", [3, 2], f32(*range(6))), ("layers.0.attn_out", "F32", [3, 2], f32(*range(6))),
     ("logits", "F32", [3, 4], f32(*range(12)))], meta))
put("tapfile", "brackets.st", safetensors([("logits", "F32", [1, 1], f32(0))], {"token_ids": "[1, 2 3]"}))
put("tapfile", "no_taps.st", safetensors([], {"token_ids": ""}))
put("tapfile", "not_2d.st", safetensors([("x", "F32", [2], f32(1, 2))]))

# config: the stories260K config (as HF writes it), a GQA one with rope_parameters, LLaMA-3 style ids.
base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
        "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "hidden_act": "silu", "bos_token_id": 1,
        "eos_token_id": 2, "tie_word_embeddings": True}
put("config", "stories260K.json", json.dumps(base, indent=2))
put("config", "rope_parameters.json", json.dumps(dict(base, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})))
put("config", "llama3_ids.json", json.dumps(dict(base, eos_token_id=[2, 3], rope_scaling=None, attention_bias=False)))
put("config", "model_type.json", json.dumps({k: v for k, v in base.items() if k != "architectures"}))

# tolerances: the committed table and a few lines of each metric.
copy("tolerances", "golden/tolerances")
put("tolerances", "small", "fp32 logits top1 1 # c\n\nfp16\t*\trel_l2\t1e-2\nbf16 layers.[0-9].* kl 0.5\n"
    "* * max_abs 3\r\nfp32 x cos_dist 0\nfp32 y nmse 1e300\n")

# tokenizer: byte 0 = tokenizer (bits 0-1) and flags (bit 2 add_special, bit 3 skip_special), then text.
for i, text in enumerate(["Hello world", "  leading and trailing  ", "<s>special</s> <sep> x", "caf\u00e9 \u2581\U0001F600",
                          "a\nb\tc\r\n", "\x00\x01\x7f"]):
    put("tokenizer", f"text{i}", bytes([i % 16]) + text.encode())
put("tokenizer", "bad_utf8", b"\x05ab\xc3(\xed\xa0\x80\xf4\x90\x80\x80")

# tokenizer_load: the committed tiny tokenizer and the small malformed ones.
copy("tokenizer_load", "tests/data/tokenizer/tiny.json")
for f in sorted(os.listdir("tests/data/tokenizer/bad")):
    if f not in ("bad_config.json", "tiny_config.json"):
        copy("tokenizer_load", f"tests/data/tokenizer/bad/{f}")

# cnn_dailymail: the reader's committed fixtures and a short item with escapes.
for f in sorted(os.listdir("tests/data/rouge/fixtures")):
    if f.startswith("cnn_"):
        copy("cnn_dailymail", f"tests/data/rouge/fixtures/{f}")
put("cnn_dailymail", "escapes.jsonl", json.dumps({"id": "x", "article": "A \"quoted\" caf\u00e9\n\ttab",
                                                  "highlights": "One.\nTwo.", "extra": [1, {"a": None}]}) + "\n\n  \n")
