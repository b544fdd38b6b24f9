#!/usr/bin/env python3
"""make_rouge_vectors.py: writes the ROUGE / Porter / bootstrap test vectors under tests/data/rouge/
from the real packages, so tests/test_rouge.c can check duet's C against them.

Rerun (from the repository root; needs rouge_score 0.1.2, nltk, numpy, and the shared data):
    pip install rouge_score nltk numpy
    python3 scripts/make_rouge_vectors.py [--data /work/shared/data] [--out tests/data/rouge]

Outputs (all deterministic; the texts come from hand-written edge cases and from the first 100
cnn_dailymail 3.0.0 test items in $DUET_DATA/cnn_dailymail/test_100.jsonl):
  pairs.jsonl     one pair per line: {"prediction", "reference", "scores": {"nostem": S, "stem": S}}
                  with S = {"rouge1": [p, r, f], "rouge2": ..., "rougeL": ..., "rougeLsum": ...} as
                  rouge_scorer.RougeScorer([...4 types], use_stemmer).score(reference, prediction).
  bootstrap.json  {"sets": [...]}: for a subset of pairs (indices) and a stemmer flag, what Hugging
                  Face evaluate's "rouge" computes under its temp_seed(0) (summarize.py sets
                  metric.seed = 0): np.random.seed(0), then scoring.BootstrapAggregator() (1000
                  samples, 95%) fed the pairs' scores in order, .aggregate() -> low/mid/high P/R/F per
                  type; plus the plain means. {"randint": [...]}: np.random.seed(0) then
                  np.random.randint(0, n, size=k) for several n, drawn one after another.
  porter.tsv      word<TAB>stem for ~3600 words, stems from nltk.stem.porter.PorterStemmer() (the
                  default NLTK_EXTENSIONS mode, as rouge_score's tokenizers.DefaultTokenizer uses).
"""
import argparse
import importlib.metadata
import json
import os
import random
import re
import sys

import nltk
import numpy as np
from nltk.stem import porter
from rouge_score import rouge_scorer, scoring

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

HAND = [
    # empty strings, whitespace and punctuation only
    ("", ""), ("", "the cat sat on the mat"), ("the cat sat on the mat", ""),
    ("   ", "\n\n"), ("!!! ??? ...", "--- ,,, ;;;"), ("...", "the cat."), ("\n", "a\n"),
    # identical, disjoint, repeated tokens
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the quick brown fox", "jumps over lazy dogs"),
    ("the the the the", "the"), ("the", "the the the the"),
    ("a a a b", "a b b b"), ("a b a b a b", "b a b a"), ("x y x y x", "x x y y"),
    ("one two three one two three", "three two one three two one"),
    ("police police police killed", "police killed police"),
    # case, punctuation, digits
    ("The Cat, the HAT!", "the cat; THE hat?"), ("don't stop-believing", "don t stop believing"),
    ("It's 3.14 and 1,000 people", "its 3 14 and 1000 people"), ("U.S. e-mail", "us email"),
    ("http://www.example.com/a_b?x=1", "www example com a b x 1"),
    ("tab\tseparated\ttext", "tab separated text"), ("under_score and hy-phen", "under score hy phen"),
    # multi-sentence Lsum
    ("the cat sat.\nthe dog ran.", "the dog ran.\nthe cat sat."),
    ("a b c\nd e f", "a b c d e f"), ("a b c d e f", "a b c\nd e f"),
    ("a b\n\n\nc d\n", "\nc d\n\na b"), ("w1 w2 w3\nw3 w2 w1", "w1 w3\nw2 w1"),
    ("the cat\nthe cat\nthe cat", "the cat the cat"), ("police said\nsaid police", "police said police"),
    ("a b c\r\nd e f\r\n", "a b c\nd e f"), ("x\n \n y", "x y"), ("\n\n\n", "a b\nc"),
    ("one\ntwo\nthree\nfour\nfive", "five\nfour\nthree\ntwo\none"),
    ("a b a c a d\nb a\nc a", "a a a\nb c d\na b c d"),
    # unicode: the two code points that lower() to ASCII, and many that do not
    ("KELVIN \u212a and \u212aelvin", "kelvin k and kelvin"), ("\u0130stanbul \u0130", "i stanbul i"),
    ("\u0130\u0130\u0130 abc\u0130def", "i i i abc i def"), ("caf\u00e9 na\u00efve r\u00e9sum\u00e9", "caf na ve r sum"),
    ("\u00c9COLE \u00c0 PARIS", "cole paris"), ("stra\u00dfe STRASSE", "strasse"),
    ("\u03a3\u03c5\u03bd\u03c4\u03b1\u03b3\u03ae \u03a3 greek", "greek"), ("\u4e2d\u6587 chinese \u6f22\u5b57", "chinese"),
    ("emoji \U0001F600 smile \U0001F44D\U0001F3FD ok", "emoji smile ok"),
    ("\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13", "fullwidth abc 123"), ("\ufb01nance ligature", "finance ligature"),
    ("combining e\u0301 a\u0300 marks", "combining e a marks"), ("nul\x00byte here", "nul byte here"),
    ("zero\u200bwidth\u00a0nbsp", "zero width nbsp"), ("arabic \u0627\u0644\u0639\u0631\u0628\u064a\u0629 text", "arabic text"),
    ("\u2160\u2161 roman \u2170", "roman ii"), ("\u00bd half \u00b2 sq", "half 2 sq"),
    ("\u0130\u212a\u0130\u212a", "ikik i k"), ("line\u2028sep\u2029para\x85nel", "line sep para nel"),
    # stemmer-relevant words
    ("running runs ran runner", "run running runs"),
    ("generously generalization generals", "generous general generalize"),
    ("relational conditional rational", "relate condition rationale"),
    ("caresses ponies ties caress cats", "caress pony tie cat"),
    ("agreed plastered motoring hopping falling", "agree plaster motor hop fall"),
    ("happy sky skies dying lying tying", "happi sky die lie tie"),
    ("news innings outings cannings howe proceed exceed succeed", "news inning outing canning"),
    ("triplicate formative formalize electricity hopeful goodness", "triplic form formal electr hope good"),
    ("revival allowance inference airliner adoption", "reviv allow infer airlin adopt"),
    ("controlling rolling probate cease", "control roll probat ceas"),
    ("yyyy syzygy toy enjoy spy fly try", "toy enjoy spi fli tri"),
    ("feed bled sing sized fizzed failing filing", "fee bleed sing size fizz fail file"),
    ("analogousli vietnamization predication operator feudalism", "analog vietnam predic oper feud"),
    ("decisiveness hopefulness callousness formality sensitivity sensibility", "decis hope callous formal sensit sensibl"),
    ("the 1990s mp3s 3rd 12th years", "1990 mp3 3rd 12th year"),
]


def sentences(text):
    """A crude sentence split for making multi-line predictions (not part of ROUGE)."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p]


def make_pairs(items):
    pairs = list(HAND)
    rnd = random.Random(1234)
    for i, it in enumerate(items):
        ref = it["highlights"]
        art = it["article"]
        kind = i % 6
        if kind == 0:    # lead-3 summary, one sentence per line (the classic baseline)
            pred = "\n".join(sentences(art)[:3])
        elif kind == 1:  # another item's reference
            pred = items[(i + 1) % len(items)]["highlights"]
        elif kind == 2:  # the reference's words shuffled, on one line
            w = ref.split()
            rnd.shuffle(w)
            pred = " ".join(w)
        elif kind == 3:  # the reference's sentences reversed, some words dropped or repeated
            out = []
            for s in reversed(ref.split("\n")):
                w = [x for x in s.split() if rnd.random() > 0.2]
                if w and rnd.random() < 0.5:
                    w.insert(rnd.randrange(len(w)), rnd.choice(w))
                out.append(" ".join(w))
            pred = "\n".join(out)
        elif kind == 4:  # the first 100 words of the article, one line (like a truncated generation)
            pred = " ".join(art.split()[:100])
        else:            # lead-2 plus the reference's last sentence
            pred = "\n".join(sentences(art)[:2] + ref.split("\n")[-1:])
        pairs.append((pred, ref))
    # long texts: whole articles against references and against each other
    for i in (3, 17, 42):
        pairs.append((items[i]["article"], items[i]["highlights"]))
    pairs.append(("\n".join(sentences(items[8]["article"])), items[9]["article"]))
    return pairs


def score(scorer, pred, ref):
    s = scorer.score(ref, pred)
    return {t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in TYPES}


def evaluate_like(scorer, pairs):
    """Hugging Face evaluate's rouge _compute (use_aggregator=True) under temp_seed(0)."""
    np.random.seed(0)
    agg = scoring.BootstrapAggregator()
    for pred, ref in pairs:
        agg.add_scores(scorer.score(ref, pred))
    res = agg.aggregate()
    out = {}
    for t in TYPES:
        out[t] = {k: list(map(float, getattr(res[t], k))) for k in ("low", "mid", "high")}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.environ.get("DUET_DATA", os.path.join(here, "..", "..", "shared", "data")))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "rouge"))
    args = ap.parse_args()
    with open(os.path.join(args.data, "cnn_dailymail", "test_100.jsonl"), encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    os.makedirs(args.out, exist_ok=True)
    versions = {"rouge_score": importlib.metadata.version("rouge_score"), "nltk": nltk.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}

    pairs = make_pairs(items)
    scorers = {False: rouge_scorer.RougeScorer(TYPES, use_stemmer=False),
               True: rouge_scorer.RougeScorer(TYPES, use_stemmer=True)}
    with open(os.path.join(args.out, "pairs.jsonl"), "w", encoding="utf-8") as f:
        for pred, ref in pairs:
            rec = {"prediction": pred, "reference": ref,
                   "scores": {"nostem": score(scorers[False], pred, ref),
                              "stem": score(scorers[True], pred, ref)}}
            f.write(json.dumps(rec, ensure_ascii=True) + "\n")

    n_hand = len(HAND)
    sets = []
    for name, idx, stem in [
        ("one item", [n_hand], False),
        ("two items", [n_hand, n_hand + 1], False),
        ("first 20 cnn pairs", list(range(n_hand, n_hand + 20)), False),
        ("100 cnn pairs", list(range(n_hand, n_hand + 100)), False),
        ("100 cnn pairs, stemmer", list(range(n_hand, n_hand + 100)), True),
        ("all pairs", list(range(len(pairs))), False),
        ("hand-written pairs, stemmer", list(range(n_hand)), True),
    ]:
        sub = [pairs[i] for i in idx]
        res = evaluate_like(scorers[stem], sub)
        scores = [score(scorers[stem], p, r) for p, r in sub]
        mean = {t: [float(np.mean([s[t][k] for s in scores])) for k in range(3)] for t in TYPES}
        sets.append({"name": name, "indices": idx, "stem": stem, "result": res, "mean": mean})
    np.random.seed(0)
    randint = []
    for n, k in [(1, 5), (2, 40), (3, 40), (7, 40), (20, 40), (100, 40), (1000, 40), (65537, 40),
                 (3000000000, 20), (4294967296, 20), (1, 3), (5, 10)]:
        randint.append({"n": n, "values": [int(v) for v in np.random.randint(0, n, size=k)]})
    with open(os.path.join(args.out, "bootstrap.json"), "w") as f:
        json.dump({"versions": versions, "n_samples": 1000, "seed": 0, "sets": sets,
                   "randint_after_seed0": randint}, f, indent=1)
        f.write("\n")

    words = set()
    for it in items:
        for t in re.split("[^a-z0-9]+", (it["article"] + " " + it["highlights"]).lower()):
            if len(t) > 3:
                words.add(t)
    words = sorted(words)
    words = words[::2] + [w for w in words if re.search(r"(y|ies|ied|ing|ed|alli|logi|bli|ll|e)$", w)][::2]
    extra = """sky skies dying lying tying news innings inning outings outing cannings canning howe
    proceed exceed succeed ties dies lies pies ied tied died lied spied cried flies yyyy yyy syzygy toy
    enjoy enjoyment spy fly try happy caresses ponies caress cats feed agreed plastered bled motoring
    sing conflated troubled sized hopping tanned falling hissing fizzed failing filing happy relational
    conditional rational valenci hesitanci digitizer conformabli radicalli differentli vileli
    analogousli vietnamization predication operator feudalism decisiveness hopefulness callousness
    formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful
    goodness revival allowance inference airliner gyroscopic adjustable defensible irritant
    replacement adjustment dependent adoption homologou communism activate angulariti homologous
    effective bowdlerize probate rate cease controll roll generously fully beautifully hopefully
    archaeology apology geology anthology trilogy analogi eulogi abyss abysses mississippi bayyyy
    xyzzy aaaa eeee iiii oooo uuuu bbbb 1990s mp3s 3rd 12th 2000 a1b2 yes eyes buys guys days says
    quietly generalizations oscillators universally conditionally""".split()
    words = sorted(set(words) | set(extra))
    st = porter.PorterStemmer()
    assert st.mode == porter.PorterStemmer.NLTK_EXTENSIONS
    with open(os.path.join(args.out, "porter.tsv"), "w") as f:
        f.write("# word<TAB>stem from nltk %s PorterStemmer() (NLTK_EXTENSIONS); made by "
                "scripts/make_rouge_vectors.py\n" % nltk.__version__)
        for w in words:
            f.write("%s\t%s\n" % (w, st.stem(w)))
    print("pairs: %d (x2 stemmer modes), bootstrap sets: %d, porter words: %d" % (len(pairs), len(sets), len(words)))


if __name__ == "__main__":
    main()
