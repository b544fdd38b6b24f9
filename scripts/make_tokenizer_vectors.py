#!/usr/bin/env python3
"""make_tokenizer_vectors.py: expected token ids and decodes for duet's tokenizer tests, made with
the Hugging Face `tokenizers` library (the reference duet's common/tokenizer.c must match).

Writes, under tests/data/tokenizer/:
  stories260K.json  vectors for <data>/stories260K/tokenizer.json (+ tokenizer_config.json)
  llama2.json       vectors for <data>/llama2-tokenizer/tokenizer.json (no tokenizer_config.json)
  tiny.json         a small tokenizer trained here on text written here (Metaspace pre-tokenizer
                    and decoder, TemplateProcessing with <s> ... </s>, an lstrip/rstrip added
                    token); committed so that tests/test_tokenizer_errors can run it always
  tiny_vectors.json vectors for tiny.json
Each vectors file holds:
  cases:        {"text", "ids" (no special tokens), "ids_special" (BOS/EOS as tokenizer_config.json
                says, else as the post_processor says), "decoded" = decode(ids_special,
                skip_special_tokens=True), "decoded_special" = decode(ids_special, False)}
  decode_cases: random id lists (byte tokens making valid and invalid UTF-8, special tokens in the
                middle, "▁" first) with "skip" / "noskip" decodes
  articles:     cnn_dailymail articles (not committed: the test reads them from the shared data by
                line number and checks the id), with their ids and the FNV-1a 64 hash and byte
                length of HF's decode, so no article text is committed
The texts are written here: plain English, CJK, accents, Cyrillic, Arabic, combining marks, emoji
with ZWJ sequences, control characters, tabs/newlines, runs of spaces, leading/trailing spaces, the
empty string, digits, "<s>" / "</s>" / "<unk>" inside text, plus seeded random mixtures.

usage: python3 scripts/make_tokenizer_vectors.py [--data ../shared/data] [--out tests/data/tokenizer]
Needs: pip install tokenizers (made with the version recorded in each file).
"""
import argparse
import json
import os
import random

import tokenizers
from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers, processors, trainers

HAND = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "a", "A", "Hello world", " Hello world",
    "Hello world ", "  Hello   world  ", "Hello\tworld", "Hello\nworld", "Hello \n world",
    "line one\nline two\n\nline four\n", "\r\nWindows\r\nline\r\n",
    "Once upon a time, there was a little girl named Lily.",
    "The quick brown fox jumps over the lazy dog.",
    "She said: \"it's fine\" -- and (maybe) [not] {really}; ok?!",
    "I don't know, you can't, we won't, they'll, he'd, I'm, y'all",
    "0", "42", "3.14159", "1,000,000", "2023-11-24T09:08:00Z", "+1 (555) 010-9999", "1e-10 0x1F",
    "000000000000", "12345678901234567890",
    "<s>", "</s>", "<unk>", "<s></s>", "<s>Hello", "Hello</s>", "Hello <s> world", "Hello</s>world",
    "a <s> b</s>c", " <s> ", "<s><s><s>", "<<s>>", "</s</s>>", "<s >", "< s>", "<0x41>", "<0x0A> x",
    "Café résumé naïve façade Ångström Øre", "Ünïcödé ĉĥâŕś", "e\u0301 a\u0300 o\u0308 (combining)",
    "\u0915\u094d\u0937 \u0928\u092e\u0938\u094d\u0924\u0947", "Zalgo: Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o",
    "日本語のテキストです。", "中文测试，你好世界！", "한국어 텍스트", "Привет, мир! Ёжик в тумане.",
    "مرحبا بالعالم", "שלום עולם", "Ελληνικά γράμματα", "ไทย ภาษา", "Tiếng Việt có dấu",
    "😀", "😀😃😄", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 thumbs", "🇫🇷🇩🇪 flags", "❤️ heart", "a😀b",
    "\x00", "a\x00b", "\x01\x02\x03", "\x07bell\x08", "\x1b[31mred\x1b[0m", "\x7f", "\u0085\u00a0\u2028",
    "\u200b zero width \u200b", "\ufeffBOM", "tab\t\ttabs\t", "   leading", "trailing   ",
    "multiple     spaces     inside", "a  b   c    d     e", "\u3000ideographic space\u3000",
    "x" * 100, "ab" * 64, " " * 40, "!!!???...,,,", "#include <stdio.h>\nint main(void) { return 0; }",
    "def f(x):\n    return x ** 2\n", "https://example.com/path?q=1&r=two#frag", "user@example.org",
    "C'est la vie. Das ist gut. ¿Qué pasa? ¡Hola!", "€100 £50 ¥1000 ₹20 ₿", "½ ¼ ¾ ² ³ ° µ ©®™",
    "∀x∈ℝ: x² ≥ 0 ∧ √4 = 2", "Lily and Ben went to the park. They played on the swings.",
    "TL;DR: ", "Summarize: the cat sat on the mat.\nTL;DR:", "n't", " n't", "don't",
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\t\n\r",
    ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|", "éèêëàâäôöûüçñÅØßœ", "日本語中文字测试한국어", "Привет мир",
    "مرحبا", "\u0301\u0308\u0327", "😀👍🏽🎉", "\u200d", "\x00\x01\x1f\x7f", "<s>", "</s>", "<unk>",
    "▁", "\u00a0\u3000",
]


def random_texts(rng, n):
    out = []
    for _ in range(n):
        k = rng.randint(0, 12)
        parts = []
        for _ in range(k):
            pool = rng.choice(POOLS)
            if pool in ("<s>", "</s>", "<unk>"):
                parts.append(pool)
            elif rng.random() < 0.5:
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
            else:
                parts.append(rng.choice(["the", "cat", "Lily", "happy", "time", "once", "upon", "ran",
                                         "world", "little", "big", "and", "said"]))
        out.append("".join(parts))
    return out


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def with_special(tok, cfg, text):
    """ids with BOS/EOS as duet adds them: per tokenizer_config.json when given (what transformers'
    LlamaTokenizerFast does), else tokenizers' post_processor."""
    plain = tok.encode(text, add_special_tokens=False).ids
    hf = tok.encode(text, add_special_tokens=True).ids
    if cfg is None:
        return plain, hf
    bos = [tok.token_to_id(cfg["bos_token"])] if cfg.get("add_bos_token", True) else []
    eos = [tok.token_to_id(cfg["eos_token"])] if cfg.get("add_eos_token", False) else []
    ids = bos + plain + eos
    assert ids == hf, "tokenizer_config.json and the post_processor disagree for %r" % text
    return plain, ids


def decode_cases(tok, rng, n):
    vocab = tok.get_vocab_size()
    byte_ids = [tok.token_to_id("<0x%02X>" % b) for b in range(256)]
    byte_ids = [i for i in byte_ids if i is not None]
    utf8 = [s.encode() for s in ["é", "日", "😀", "Я", "\u200d", " ", "\n"]]
    specials = [i for i in (tok.token_to_id(s) for s in ("<unk>", "<s>", "</s>")) if i is not None]
    space = tok.token_to_id("▁")
    out = []
    for c in range(n):
        ids = []
        if c % 5 == 0 and space is not None:
            ids.append(space)
        for _ in range(rng.randint(0, 14)):
            r = rng.random()
            if r < 0.35:
                ids.append(rng.randrange(vocab))
            elif r < 0.55 and byte_ids:  # a valid multi-byte character as byte tokens
                b = rng.choice(utf8)
                ids.extend(tok.token_to_id("<0x%02X>" % x) for x in b)
            elif r < 0.7 and byte_ids:  # lone / truncated bytes: invalid UTF-8
                ids.append(rng.choice(byte_ids))
            elif r < 0.8 and specials:
                ids.append(rng.choice(specials))
            elif space is not None:
                ids.append(space)
        out.append({"ids": ids, "skip": tok.decode(ids, skip_special_tokens=True),
                    "noskip": tok.decode(ids, skip_special_tokens=False)})
    return out


def make_vectors(tok, cfg, texts, articles, rng, meta):
    cases = []
    for text in texts:
        plain, ids = with_special(tok, cfg, text)
        cases.append({"text": text, "ids": plain, "ids_special": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=True),
                      "decoded_special": tok.decode(ids, skip_special_tokens=False)})
    arts = []
    for line, item in articles:
        plain, ids = with_special(tok, cfg, item["article"])
        dec = tok.decode(ids, skip_special_tokens=True).encode()
        arts.append({"line": line, "id": item["id"], "ids": plain, "ids_special": ids,
                     "decoded_fnv1a64": fnv1a64(dec), "decoded_bytes": len(dec)})
    out = dict(meta)
    out.update({"tokenizers_version": tokenizers.__version__, "cases": cases,
                "decode_cases": decode_cases(tok, rng, 60), "articles": arts})
    return out


def train_tiny():
    corpus = [
        "once upon a time there was a little cat who liked to nap in the sun",
        "the cat and the dog played in the park and then they went home",
        "lily said hello to the big tree and the tree said hello back",
        "the sun was warm, the sky was blue, and the birds sang happy songs",
    ] * 3
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + 90, special_tokens=specials,
                                  initial_alphabet=list("abcdefghijklmnopqrstuvwxyz ,.▁"),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    # an added special token that swallows the spaces around it
    tok.add_special_tokens([AddedToken("<sep>", lstrip=True, rstrip=True, special=True,
                                       normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    # the trainer made the <0xXX> tokens added (special) tokens; in Llama's tokenizer.json they are
    # plain vocab entries, so keep them only in model.vocab
    j = json.loads(tok.to_str())
    j["added_tokens"] = [a for a in j["added_tokens"] if not a["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(j)), j


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "tokenizer"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(20240601)
    texts = HAND + random_texts(rng, 220)

    with open(os.path.join(args.data, "cnn_dailymail", "test_100.jsonl"), encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    longest = max(range(len(items)), key=lambda i: len(items[i]["article"]))
    articles = [(i, items[i]) for i in sorted({0, 3, longest})]

    def write(name, obj):
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))

    for name, rel, cfg_rel in [("stories260K.json", "stories260K/tokenizer.json",
                                "stories260K/tokenizer_config.json"),
                               ("llama2.json", "llama2-tokenizer/tokenizer.json", None)]:
        tok = Tokenizer.from_file(os.path.join(args.data, rel))
        cfg = None
        if cfg_rel:
            with open(os.path.join(args.data, cfg_rel)) as f:
                cfg = json.load(f)
        meta = {"comment": "made by scripts/make_tokenizer_vectors.py; do not edit",
                "tokenizer": rel, "config": cfg_rel}
        write(name, make_vectors(tok, cfg, texts, articles, rng, meta))

    tiny, tiny_json = train_tiny()
    write("tiny.json", tiny_json)
    tiny_texts = HAND + random_texts(rng, 60) + [" <sep> ", "a<sep>b", "a  <sep>  b", "<sep>",
                                                 "the cat <sep>the dog", "x <s> y </s> z"]
    meta = {"comment": "made by scripts/make_tokenizer_vectors.py; do not edit",
            "tokenizer": "tiny.json (committed beside this file)", "config": None}
    write("tiny_vectors.json", make_vectors(tiny, None, tiny_texts, [], rng, meta))


if __name__ == "__main__":
    main()
