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


if __name__ == "__main__":
    main()
