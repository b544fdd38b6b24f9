#!/usr/bin/env python3
"""hf_reference.py: the Hugging Face transformers numbers duet's ref is checked against.

Runs stories260K (fp32, eager attention) with transformers and writes:
  tests/data/hf/stories260K_states.safetensors  hidden_states[0..L] and logits for fixed prompts
                                                (tensor names: <prompt>.hidden.<i>, <prompt>.logits,
                                                <prompt>.ids), metadata: transformers/torch versions
  tests/data/hf/stories260K_greedy.json         greedy ids from BOS (199 new tokens) and their text
  tests/data/hf/stories260K_summaries.json      greedy summaries of cnn_dailymail items with the
                                                summarize.py protocol (--max-input tokens, BOS kept)
Usage (needs torch, transformers, safetensors, tokenizers):
  python3 scripts/hf_reference.py --model ../shared/data/stories260K \
      --cnn ../shared/data/cnn_dailymail/test_100.jsonl --out tests/data/hf
"""
import argparse, json, os, sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer
import transformers

PROMPTS = {
    "bos": [1],
    "story": None,  # filled from the tokenizer: "Once upon a time, there was a little dog"
    "ids13": [1, 403, 407, 261, 378, 411, 263, 260, 267, 349, 412, 280, 294],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cnn", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--max-input", type=int, default=412)
    ap.add_argument("--max-output", type=int, default=100)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(a.model)
    PROMPTS["story"] = tok("Once upon a time, there was a little dog").input_ids
    tensors, meta = {}, {"transformers": transformers.__version__, "torch": torch.__version__,
                         "made_by": "scripts/hf_reference.py"}
    for name, ids in PROMPTS.items():
        out = model(torch.tensor([ids]), output_hidden_states=True)
        for i, h in enumerate(out.hidden_states):
            tensors[f"{name}.hidden.{i}"] = h[0].contiguous().float()
        tensors[f"{name}.logits"] = out.logits[0].contiguous().float()
        tensors[f"{name}.ids"] = torch.tensor(ids, dtype=torch.int32)
    save_file(tensors, os.path.join(a.out, "stories260K_states.safetensors"), metadata=meta)

    g = model.generate(torch.tensor([[1]]), max_new_tokens=199, do_sample=False)
    gen = g[0, 1:].tolist()
    json.dump({"prompt_ids": [1], "ids": gen, "text": tok.decode(gen, skip_special_tokens=True), **meta},
              open(os.path.join(a.out, "stories260K_greedy.json"), "w"), indent=1)

    if a.cnn:
        items = [json.loads(l) for l in open(a.cnn)][: a.items]
        # Prompt ids come from tokenizer.json through the `tokenizers` library (what sentencepiece gives
        # and what duet implements). transformers 5's AutoTokenizer rebuilds the Llama tokenizer from
        # its own class defaults and does not collapse runs of spaces the way tokenizer.json's
        # normalizer does, so on articles with double spaces its ids differ; both counts are recorded.
        raw = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
        res, auto_differs = [], 0
        for it in items:
            prompt = (it["article"] + " TL;DR: ").strip().replace(" n't", "n't")
            ids = raw.encode(prompt).ids  # BOS + tokens (post-processor adds BOS)
            auto_differs += ids != tok(prompt).input_ids
            if len(ids) > a.max_input:
                ids = ids[:1] + ids[len(ids) - (a.max_input - 1):]
            out = model.generate(torch.tensor([ids]), max_new_tokens=a.max_output, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
            new = out[0, len(ids):].tolist()
            res.append({"id": it["id"], "input_ids": ids, "output_ids": new,
                        "summary": tok.decode(new, skip_special_tokens=True)})
            print(it["id"], len(ids), len(new), flush=True)
        json.dump({"max_input": a.max_input, "max_output": a.max_output, "prompt_tokenizer": "tokenizers (tokenizer.json)",
                   "items_where_AutoTokenizer_differs": auto_differs, "items": res, **meta},
                  open(os.path.join(a.out, "stories260K_summaries.json"), "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
