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

# gguf: written by hand from the format (gguf.h): kv pairs of every value type, tensors of plain and
# block types, version 2 and 3, a non-default alignment.
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    if t == 8:
        return gstr(v)
    if t == 9:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    return struct.pack("<" + fmt[t], v)


def gguf(kvs, tensors, version=3, align=32):
    """kvs: [(key, type, value)]; tensors: [(name, ne (GGUF order), ggml type, raw bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    off, data = 0, b""
    for name, ne, gt, raw in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", gt, off)
        data += raw + b"\0" * (-len(raw) % align)
        off = len(data)
    out += b"\0" * (-len(out) % align)
    return out + data


kv = [("general.architecture", 8, "llama"), ("llama.block_count", 4, 1), ("llama.context_length", 10, 64),
      ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5), ("llama.rope.freq_base", 12, 10000.0),
      ("tokenizer.ggml.add_bos_token", 7, True), ("i8", 1, -3), ("u8", 0, 200), ("i16", 3, -300), ("u16", 2, 60000),
      ("i32", 5, -7), ("i64", 11, -(1 << 40)),
      ("tokenizer.ggml.tokens", 9, (8, ["<s>", "</s>", "\u0120a", "b"])),
      ("tokenizer.ggml.scores", 9, (6, [0.0, -1.0, -2.5, 3.0])),
      ("tokenizer.ggml.token_type", 9, (5, [3, 3, 1, 1])), ("nested", 9, (9, [(4, [1, 2]), (8, ["x"])]))]
rng = bytes((i * 37 + 11) % 256 for i in range(4096))
q8 = b"".join(struct.pack("<H", 0x3C00) + rng[i * 32:(i + 1) * 32] for i in range(2))  # Q8_0: 2 blocks
q41 = b"".join(struct.pack("<HH", 0x2E66, 0xB800) + rng[i * 16:(i + 1) * 16] for i in range(2))  # Q4_1
q4k = struct.pack("<HH", 0x3C00, 0x3800) + rng[:12] + rng[100:228]  # Q4_K: 1 block of 256
q6k = rng[:128] + rng[200:264] + rng[300:316] + struct.pack("<H", 0x3000)  # Q6_K
put("gguf", "small_v3.gguf", gguf(kv, [("token_embd.weight", [4, 2], 0, f32(*range(8))),
                                      ("f16", [3], 1, struct.pack("<3H", 0x3C00, 0x8001, 0x7C00)),
                                      ("q8", [32, 2], 8, q8), ("q41", [64], 3, q41)]))
put("gguf", "kquants.gguf", gguf(kv[:2], [("q4k", [256], 12, q4k), ("q6k", [256, 1], 14, q6k)]))
put("gguf", "v2_align64.gguf", gguf([("general.alignment", 4, 64)] + kv[:3], [("a", [2], 0, f32(1, 2)), ("b", [1], 0, f32(3))],
                                    version=2, align=64))
put("gguf", "empty.gguf", gguf([], []))
for f in ("gguf_py.gguf", "duet_written.gguf"):  # the GGUF reader's committed fixtures (gguf-py and duet's writer)
    copy("gguf", f"tests/data/gguf/{f}")

# tokenizer_bpe: byte 0 = tokenizer (bits 0-1: SmolLM2's tokenizer.json, tiny gpt2, llama-bpe, qwen2 GGUF)
# and flags (bit 2 add_special, bit 3 parse_special, bit 4 skip_special), then the text.
for i, text in enumerate(["Hello world", "  leading and trailing  ", "<|im_start|>user\nHi<|im_end|>\n",
                          "caf\u00e9 \u2581\U0001F600", "a\nb\tc\r\n", "\x00\x01\x7f", "I'm 12345 it's   x'll\u00a0y",
                          "<|begin_of_text|>x<|end_of_text|> <|endoftext|>"]):
    put("tokenizer_bpe", f"text{i}", bytes([(i % 4) | (i * 4 & 0x1c)]) + text.encode())
put("tokenizer_bpe", "bad_utf8", b"\x0dab\xc3(\xed\xa0\x80\xf4\x90\x80\x80")
put("tokenizer_bpe", "cr_c", b"\x0dc")  # UBSan on NULL + 0 in the ByteLevel decode (test_bpe_json: empty_decode)

# tokenizer_gguf: the tiny byte-level BPE tokenizers of test_bpe_json (18 KB each) and a hand-made one
# of a few tokens (added tokens, a hole in the types, BOS/EOS/unk ids) that mutates faster.
for f in sorted(os.listdir("tests/data/tokenizer/gguf")):
    copy("tokenizer_gguf", f"tests/data/tokenizer/gguf/{f}")
put("tokenizer_gguf", "hand.gguf", gguf(
    [("general.architecture", 8, "llama"), ("tokenizer.ggml.model", 8, "gpt2"), ("tokenizer.ggml.pre", 8, "gpt2"),
     ("tokenizer.ggml.tokens", 9, (8, ["<s>", "</s>", "a", "b", "ab", "\u0120", "\u0120a", "<unk>", "<|x|>"])),
     ("tokenizer.ggml.token_type", 9, (5, [3, 3, 1, 1, 1, 1, 1, 2, 4])),
     ("tokenizer.ggml.merges", 9, (8, ["a b", "\u0120 a"])), ("tokenizer.ggml.bos_token_id", 4, 0),
     ("tokenizer.ggml.eos_token_id", 4, 1), ("tokenizer.ggml.unknown_token_id", 4, 7),
     ("tokenizer.ggml.add_bos_token", 7, True)], []))

# model_planar: the planar quantized layout (docs/design.md) of the harness's fixed tiny config (hidden 64,
# ffn 128, 1 layer, 2 heads of 32, vocab 16) in int8, int4 and int4-g64; small scales, codes from a counter.
def planar(mode):
    D, F, V = 64, 128, 16
    mats = [("self_attn.q_proj", D, D), ("self_attn.k_proj", D, D), ("self_attn.v_proj", D, D),
            ("self_attn.o_proj", D, D), ("mlp.gate_proj", F, D), ("mlp.up_proj", F, D), ("mlp.down_proj", D, F)]
    t = [("model.embed_tokens.weight", "F32", [V, D], f32(*[((i * 7) % 13 - 6) / 8 for i in range(V * D)])),
         ("model.norm.weight", "F32", [D], f32(*[1.0] * D)),
         ("lm_head.weight", "F32", [V, D], f32(*[((i * 5) % 11 - 5) / 16 for i in range(V * D)])),
         ("model.layers.0.input_layernorm.weight", "F32", [D], f32(*[1.0] * D)),
         ("model.layers.0.post_attention_layernorm.weight", "F32", [D], f32(*[1.0] * D))]
    group = {"int8": None, "int4": None, "int4-g64": 64}[mode]
    for name, n, k in mats:
        g = group or k
        pre = f"model.layers.0.{name}"
        if mode == "int8":
            t.append((pre + ".qweight", "I8", [n, k], bytes(((i * 37) % 255) for i in range(n * k))))
        else:
            t.append((pre + ".qweight", "U8", [n, k // 2], bytes(((i * 29) % 256) for i in range(n * k // 2))))
        t.append((pre + ".scales", "F16", [n, k // g], struct.pack(f"<{n * k // g}H", *[0x2000] * (n * k // g))))
        if group:
            t.append((pre + ".zeros", "U8", [n, k // g], bytes((i % 16) for i in range(n * k // g))))
    meta = {"duet.weights": mode, "duet.group_size": str(group) if group else "row"}
    return safetensors(t, meta)


for mode in ("int8", "int4", "int4-g64"):
    put("model_planar", f"{mode}.st", planar(mode))

# openai_request: POST bodies of /v1/completions and /v1/chat/completions (the harness parses each as
# both): every field the parser reads, in each accepted form, and near misses of each check.
oa = lambda name, body: put("openai_request", name, body if isinstance(body, (str, bytes)) else json.dumps(body))
oa("completion.json", {"model": "SmolLM2", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})
oa("completion_all.json", {"prompt": ["Once"], "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
                           "seed": -3, "n": 1, "stop": ["\n", "The", "\u00e9t\u00e9", "."], "stream": True,
                           "stream_options": {"include_usage": True}, "user": "x", "presence_penalty": 0})
oa("chat.json", {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                 "max_completion_tokens": 4, "stop": "\n\n", "stream": False})
oa("chat_parts.json", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                    {"role": "assistant", "content": ""}], "model": None, "top_k": -1, "seed": 18446744073})
oa("bad_types.json", {"prompt": 42, "messages": {"role": "user"}, "temperature": "hot", "stream": "yes", "n": 2})
oa("bad_ranges.json", {"prompt": "x", "max_tokens": 0, "temperature": 2.5, "top_p": 0, "top_k": -2, "stop": ["", "a"]})
oa("bad_stop.json", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})
oa("bad_part.json", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})
oa("stream_options.json", {"prompt": "x", "stream_options": {"include_usage": 1}})
oa("not_object.json", '["Hi", 1.5e308, null, true]')
oa("truncated.json", '{"prompt": "caf\\u00e9 \\ud83d\\ude00", "max_tokens": 1')
oa("duplicate.json", '{"prompt": "a", "prompt": "b"}')
# jansson's error quotes the body up to a bad escape, here half of a 2-byte character: the message was not
# UTF-8, so srv_json_error failed and the client got the 500 "out of memory" body (fuzz_openai_request).
oa("bad_escape_utf8.json", '{"prompt": "x", "stop": "\\u0\u039a"}'.encode())

# calib: calibration files for the harness's shape (dim 4, ffn 6, 2 layers, 2 heads of 2, 1 kv head, vocab 8,
# fingerprint 0123456789abcdef): a valid one, and near misses (another shape, a short array, a negative value).
def calib(dim=4, down=6, k=-1.0 + 2.0, fp="0123456789abcdef"):
    lay = lambda: {"qkv_in": [0.5] * dim, "o_in": [1.0] * 4, "gate_up_in": [2.0] * 4, "down_in": [3.0] * down,
                   "k": [k], "v": [0.25]}
    return json.dumps({"format": "duet-calibration", "version": 1,
                       "model": {"dim": dim, "ffn_dim": 6, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "head_dim": 2,
                                 "vocab_size": 8, "fingerprint": fp},
                       "samples": 2, "tokens": 64, "source": "make_corpus.py", "layers": [lay(), lay()]}, indent=1)
put("calib", "valid.json", calib())
put("calib", "other_dim.json", calib(dim=8))
put("calib", "short_down.json", calib(down=5))
put("calib", "negative_k.json", calib(k=-1.0))
put("calib", "other_fingerprint.json", calib(fp="0000000000000000"))
