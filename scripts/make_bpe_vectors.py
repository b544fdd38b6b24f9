#!/usr/bin/env python3
"""make_bpe_vectors.py: expected token ids and decodes for duet's GPT-2 style byte-level BPE
(common/tokenizer_bytelevel.c, tokenizer_gguf.c), made with the Hugging Face `tokenizers` library.

The reference tokenizer is built here FROM THE GGUF's own metadata (read with the `gguf` package):
tokenizer.ggml.tokens as the BPE vocab, tokenizer.ggml.merges as the merges, token_type 3
(control) as special added tokens and 4 (user defined) as added tokens, and SmolLM2's
pre-tokenizer as its Hugging Face tokenizer.json has it: Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], ByteLevel decoder and post-processor.

Writes, under tests/data/tokenizer/:
  smollm2_bpe.jsonl       JSON lines: first a header {"kind": "header", ...: the model file, its
                          size, the tokenizers version, the counts}; then one line per text
                          {"kind": "text", "text", "ids" (special tokens in the text tokenized as
                          plain text: HF encode_special_tokens=True), "ids_special" (special tokens
                          matched: the default), "decoded" = decode(ids_special,
                          skip_special_tokens=True), "decoded_special" = decode(ids_special,
                          False)}; then one line per random id list {"kind": "decode", "ids",
                          "skip", "noskip"} (single-byte tokens that make invalid or truncated
                          UTF-8, special tokens in the middle)
  smollm2_bpe_tokenizer.json  the reference tokenizer itself (compact), when under 3 MB; the C
                          test loads it and checks it against the same vectors
  gguf/tiny_<pre>.gguf    a small byte-level BPE trained here on the texts written here, as GGUF
                          metadata only (no tensors) with tokenizer.ggml.pre = gpt2, llama-bpe,
                          qwen2 (llama-bpe without add_bos_token, so llama.cpp's default BOS
                          applies), and malformed ones (bad_*.gguf: unknown pre, model llama, model
                          bert, a merge naming a missing token, a bos id out of range)
  tiny_bpe.jsonl          vectors for the tiny GGUFs: {"pre", "text", "ids", "ids_special"
                          (add_special), "decoded"} made by tokenizers with the Hugging Face
                          pre-tokenizer of each model family (Split(regex, Isolated) +
                          ByteLevel(use_regex=False) for Llama-3 and Qwen2, ByteLevel for GPT-2)
usage: python3 scripts/make_bpe_vectors.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                           [--out tests/data/tokenizer]
Needs: pip install tokenizers gguf.
"""
import argparse
import json
import os
import random

import gguf
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

SPECIAL_IN_TEXT = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<jupyter_code>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nHi<|im_end|>", "text<|endoftext|>more", "<|im_start|><|im_start|>",
    "<|im_start", "im_start|>", "<|im_end |>", " <|im_end|> ", "<<|im_end|>>", "<|endoftext|>\n\n",
    "a<repo_name>b<filename>c", "<empty_output>", "<|IM_START|>",
]

HAND = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\r\n\r\n", "\t\t\t", "a", "A", "Hello",
    "Hello world", " Hello world", "Hello world ", "Hello world  ", "  Hello   world  ",
    "Hello\tworld", "Hello\nworld", "Hello \n world", "Hello\r\nworld\r\n", "line one\nline two\n\nline four\n",
    "trailing space ", "trailing spaces   ", "   leading", "\n\n\nnewlines first", "tabs\tin\tthe\tmiddle\t",
    "mixed \t \n \r\n whitespace", "a  b   c    d     e      f", " " * 17, "\n" * 9, "\t " * 5,
    "The quick brown fox jumps over the lazy dog.", "Once upon a time, there was a little girl named Lily.",
    "She said: \"it's fine\" -- and (maybe) [not] {really}; ok?!",
    "it's", "It's", "IT'S", "don't", "DON'T", "you're", "we've", "I'm", "they'll", "he'd", "y'all",
    "'s 't 're 've 'm 'll 'd", "can't won't shouldn't", "rock 'n' roll", "'", "''", "'''", "' s",
    "the dog's bone", "O'Reilly's", "’s curly apostrophe’s",
    "0", "7", "42", "123", "1234", "12345", "1234567890", "000000000000", "3.14159", "1,000,000",
    "2023-11-24T09:08:00Z", "+1 (555) 010-9999", "1e-10 0x1F 0b1010", "v1.2.3", "abc123def456",
    "99 bottles", "year 1999 and 2024", "٣٤٥ Arabic-Indic digits", "१२३ Devanagari digits",
    "①②③ circled", "Ⅻ roman numeral", "½ ¼ ¾ ² ³", "x²+y²=z²", "3x+4y", "a1b2c3",
    "Café résumé naïve façade Ångström Øre", "Ünïcödé ĉĥâŕś", "e\u0301 a\u0300 o\u0308 (combining)",
    "\u0915\u094d\u0937 \u0928\u092e\u0938\u094d\u0924\u0947", "日本語のテキストです。", "中文测试，你好世界！",
    "한국어 텍스트", "Привет, мир! Ёжик в тумане.", "مرحبا بالعالم", "שלום עולם", "Ελληνικά γράμματα",
    "ไทย ภาษา", "Tiếng Việt có dấu", "漢字かなカナ混じり文", "我爱北京天安门", "ﾊﾝｶｸ half-width",
    "😀", "😀😃😄", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 thumbs", "🇫🇷🇩🇪 flags", "❤️ heart", "a😀b",
    "emoji at end 🎉", "🎉 emoji first", "🤖🤖🤖🤖", "𝕳𝖊𝖑𝖑𝖔 math letters", "𠜎𠜱𠝹 rare CJK",
    "\x00", "a\x00b", "\x01\x02\x03", "\x07bell\x08", "\x1b[31mred\x1b[0m", "\x7f", "\u0085",
    "\u00a0nbsp\u00a0", "\u2028\u2029", "\u200b zero width \u200b", "\ufeffBOM", "\u3000ideographic\u3000",
    "\u00ad soft hyphen", "\u2009thin\u2009space", "\u180e mongolian", "\ufffd replacement",
    "x" * 100, "ab" * 64, "!!!???...,,,", "...", "---", "===", "***", "~~~", "```", "###",
    "#include <stdio.h>\nint main(void) { return 0; }\n",
    "def f(x):\n    return x ** 2\n", "if (a && b || !c) { x += 1; }", "for i in range(10):\n\tprint(i)\n",
    "    indented four\n        indented eight\n", "const s = `template ${x}`;", "<div class=\"a\">b</div>",
    "SELECT * FROM t WHERE id = 1;", "x = [1, 2, 3]; y = {'a': 1}", "#!/bin/sh\necho \"$HOME\"\n",
    "https://example.com/path?q=1&r=two#frag", "user@example.org", "C:\\Windows\\System32",
    "C'est la vie. Das ist gut. ¿Qué pasa? ¡Hola!", "€100 £50 ¥1000 ₹20 ₿", "©®™ ° µ §",
    "∀x∈ℝ: x² ≥ 0 ∧ √4 = 2", "→ ← ↑ ↓ ⇒", "• bullet • list", "“quotes” ‘single’ «guillemets»",
    "TL;DR: ", "Summarize: the cat sat on the mat.\nTL;DR:", "n't", " n't", "Mr. Smith Jr.",
    "ALL CAPS SENTENCE", "camelCaseIdentifier", "snake_case_identifier", "kebab-case-id",
    "a.b.c", "a,b,c", "a;b;c", "(a)", "[b]", "{c}", "<d>", "<|", "|>", "<|>", "<||>",
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\t", "\n",
    "\r\n", ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|", "éèêëàâäôöûüçñÅØßœ", "日本語中文字测试한국어",
    "Привет мир", "مرحبا", "\u0301\u0308\u0327", "😀👍🏽🎉🤖", "\u200d", "\x00\x01\x1f\x7f",
    "\u00a0\u3000\u2028\u0085", "'s", "'t", "'re", "'ll", "<|im_start|>", "<|im_end|>",
    "<|endoftext|>", "٣٤٥①½",
]


def random_texts(rng, n):
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            pool = rng.choice(POOLS)
            if pool.startswith("<|") or pool.startswith("'"):
                parts.append(pool)
            else:
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts))
    return out


def field_str(r, key):
    f = r.fields[key]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def field_strs(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(r, key):
    f = r.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def build(gguf_path):
    r = gguf.GGUFReader(gguf_path)
    assert field_str(r, "tokenizer.ggml.model") == "gpt2"
    assert field_str(r, "tokenizer.ggml.pre") == "smollm"
    tokens = field_strs(r, "tokenizer.ggml.tokens")
    types = field_ints(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field_strs(r, "tokenizer.ggml.merges")]
    unk = field_ints(r, "tokenizer.ggml.unknown_token_id")[0]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=tokens[unk]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    added = [AddedToken(tokens[i], special=(types[i] == 3), normalized=False)
             for i in range(len(tokens)) if types[i] in (3, 4)]
    tok.add_tokens(added)  # keeps the ids: every one is in the vocab already
    for a in added:
        assert tok.token_to_id(a.content) == vocab[a.content]
    specials = [i for i in range(len(tokens)) if types[i] == 3]
    return tok, tokens, specials


def encode(tok, text, parse_special):
    tok.encode_special_tokens = not parse_special
    try:
        return tok.encode(text).ids
    finally:
        tok.encode_special_tokens = False


def decode_cases(tok, tokens, specials, rng, n):
    # single-byte tokens (one GPT-2 character) and a few multi-byte pieces of emoji / CJK
    byte_tokens = [i for i, t in enumerate(tokens) if len(t) == 1]
    pieces = []
    for s in ["😀", "🎉", "中", "é", "€", "👨‍👩‍👧"]:
        pieces.extend(tok.encode(s).ids)
    out = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(1, 12)):
            c = rng.random()
            if c < 0.4:
                ids.append(rng.choice(byte_tokens))
            elif c < 0.55:
                ids.append(rng.choice(pieces))
            elif c < 0.65:
                ids.append(rng.choice(specials))
            else:
                ids.append(rng.randrange(len(tokens)))
        out.append({"kind": "decode", "ids": ids,
                    "skip": tok.decode(ids, skip_special_tokens=True),
                    "noskip": tok.decode(ids, skip_special_tokens=False)})
    return out


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tiny(texts):
    from tokenizers import trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts * 3, tr)
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in d["model"]["merges"]]
    return tokens, merges


def tiny_reference(tokens, merges, pre):
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=(pre == "llama-bpe")))
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = LLAMA3_REGEX if pre == "llama-bpe" else QWEN2_REGEX
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(tokenizers.Regex(regex), "isolated", invert=False), bl])
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in tokens[:2]])
    if pre == "llama-bpe":
        tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    return tok


def write_tiny_gguf(path, tokens, merges, pre, model="gpt2", add_bos=None, bos=0):
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3, 3] + [1] * (len(tokens) - 2))
    w.add_token_merges([a + " " + b for a, b in merges])
    w.add_bos_token_id(bos)
    w.add_eos_token_id(1)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_tiny(out, texts):
    tokens, merges = train_tiny(texts)
    gdir = os.path.join(out, "gguf")
    os.makedirs(gdir, exist_ok=True)
    lines = []
    for pre in ["gpt2", "llama-bpe", "qwen2"]:
        write_tiny_gguf(os.path.join(gdir, f"tiny_{pre}.gguf"), tokens, merges, pre,
                        add_bos=None if pre == "llama-bpe" else False)
        tok = tiny_reference(tokens, merges, pre)
        for text in texts:
            tok.encode_special_tokens = True
            ids = tok.encode(text, add_special_tokens=False).ids
            ids_special = tok.encode(text, add_special_tokens=True).ids
            tok.encode_special_tokens = False
            lines.append({"pre": pre, "text": text, "ids": ids, "ids_special": ids_special,
                          "decoded": tok.decode(ids_special, skip_special_tokens=True)})
    write_tiny_gguf(os.path.join(gdir, "bad_pre.gguf"), tokens, merges, "nonsense-pre")
    write_tiny_gguf(os.path.join(gdir, "bad_model_llama.gguf"), tokens, merges, "default", model="llama")
    write_tiny_gguf(os.path.join(gdir, "bad_model_bert.gguf"), tokens, merges, "default", model="bert")
    write_tiny_gguf(os.path.join(gdir, "bad_merge.gguf"), tokens, merges + [("zz", "qq")], "gpt2")
    write_tiny_gguf(os.path.join(gdir, "bad_bos.gguf"), tokens, merges, "gpt2", bos=len(tokens) + 5)
    path = os.path.join(out, "tiny_bpe.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")
    print(f"{path}: {len(lines)} lines; {gdir}: {len(tokens)} tokens, {len(merges)} merges")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("DUET_MODEL", "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default="tests/data/tokenizer")
    a = ap.parse_args()
    tok, tokens, specials = build(a.gguf)
    rng = random.Random(20240611)
    texts = HAND + SPECIAL_IN_TEXT + random_texts(rng, 200)
    lines = []
    for text in texts:
        ids_special = encode(tok, text, True)
        lines.append({"kind": "text", "text": text, "ids": encode(tok, text, False),
                      "ids_special": ids_special,
                      "decoded": tok.decode(ids_special, skip_special_tokens=True),
                      "decoded_special": tok.decode(ids_special, skip_special_tokens=False)})
    dec = decode_cases(tok, tokens, specials, rng, 120)
    header = {"kind": "header", "gguf": os.path.basename(a.gguf), "gguf_bytes": os.path.getsize(a.gguf),
              "tokenizers": tokenizers.__version__, "texts": len(lines), "decode_cases": len(dec),
              "vocab_size": len(tokens)}
    path = os.path.join(a.out, "smollm2_bpe.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for obj in [header] + lines + dec:
            f.write(json.dumps(obj, ensure_ascii=True) + "\n")
    print(f"{path}: {len(lines)} texts, {len(dec)} decode cases")
    js = tok.to_str(pretty=False)
    tj = os.path.join(a.out, "smollm2_bpe_tokenizer.json")
    if len(js.encode("utf-8")) < 3 * 1024 * 1024:
        with open(tj, "w", encoding="utf-8") as f:
            f.write(js)
        print(f"{tj}: {len(js.encode('utf-8'))} bytes")
    else:
        print(f"tokenizer.json is {len(js)} bytes: not written")
    make_tiny(a.out, HAND + SPECIAL_IN_TEXT[:6] + random_texts(random.Random(7), 60))


if __name__ == "__main__":
    main()
