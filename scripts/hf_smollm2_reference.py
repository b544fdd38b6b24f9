#!/usr/bin/env python3
"""hf_smollm2_reference.py: the Hugging Face transformers numbers duet's ref is checked against on the
default model, SmolLM2-135M-Instruct Q4_1 GGUF (`make model`).

transformers loads the GGUF itself (from_pretrained(dir, gguf_file=...), which dequantizes with the
`gguf` package and undoes llama.cpp's q/k row permutation), in fp32 with TF32 off and eager attention.
Input ids are duet's: --prompts is a JSON list of {"name", "ids"} (made with `duet tokenize`), and
--eval is `duet eval --json` output, whose items carry the summarize protocol's input_ids.
Writes to --out:
  smollm2_states.safetensors  per prompt: <name>.ids, <name>.hidden.<i> (last token's row of
                              hidden_states[i], i = 0..L), <name>.logits (last token); for the first
                              prompt also <name>.hidden_all.<i> (every token's row)
  smollm2_greedy.json         per prompt: 32 greedy new ids (argmax, no EOS stop) and their text
  smollm2_summaries.json      per eval item: input_ids, greedy output_ids (up to and including EOS), summary
Usage (needs torch, transformers, gguf, safetensors):
  python3 scripts/hf_smollm2_reference.py --gguf models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --prompts prompts.json --eval ref_eval.json --out tests/data/hf
"""
import argparse, json, os, sys

import torch
from safetensors.torch import save_file
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--eval", default=None, help="duet eval --json output (input ids of the summarize protocol)")
    ap.add_argument("--eval-out", default="smollm2_summaries.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--greedy-tokens", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    d, f = os.path.split(os.path.abspath(a.gguf))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    model.to(a.device).eval()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    import gguf
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "gguf": gguf.__version__
            if hasattr(gguf, "__version__") else "?", "device": a.device, "made_by": "scripts/hf_smollm2_reference.py"}
    eos = model.config.eos_token_id

    prompts = json.load(open(a.prompts))
    tensors, greedy = {}, []
    for k, p in enumerate(prompts):
        name, ids = p["name"], p["ids"]
        x = torch.tensor([ids], device=a.device)
        out = model(x, output_hidden_states=True)
        for i, h in enumerate(out.hidden_states):
            tensors[f"{name}.hidden.{i}"] = h[0, -1].contiguous().float().cpu()
            if k == 0:
                tensors[f"{name}.hidden_all.{i}"] = h[0].contiguous().float().cpu()
        tensors[f"{name}.logits"] = out.logits[0, -1].contiguous().float().cpu()
        tensors[f"{name}.ids"] = torch.tensor(ids, dtype=torch.int32)
        # A plain argmax loop, not generate(): generate's min_new_tokens would keep going past an EOS by
        # masking the EOS logit, which changes the continuation; duet's --ignore-eos masks nothing.
        new, cur, past = [], x, None
        for _ in range(a.greedy_tokens):
            o = model(cur, past_key_values=past, use_cache=True)
            past = o.past_key_values
            nxt = int(o.logits[0, -1].argmax())
            new.append(nxt)
            cur = torch.tensor([[nxt]], device=a.device)
        greedy.append({"name": name, "prompt_ids": ids, "ids": new, "text": tok.decode(new)})
        print(name, len(ids), repr(tok.decode(new))[:120], flush=True)
    save_file(tensors, os.path.join(a.out, "smollm2_states.safetensors"), metadata={k: str(v) for k, v in meta.items()})
    json.dump({"greedy_tokens": a.greedy_tokens, "prompts": greedy, **meta},
              open(os.path.join(a.out, "smollm2_greedy.json"), "w"), indent=1)

    if a.eval:
        ev = json.load(open(a.eval))
        res = []
        for it in ev["items"]:
            ids = it["input_ids"]
            out = model.generate(torch.tensor([ids], device=a.device), max_new_tokens=ev["max_output"], do_sample=False,
                                 eos_token_id=eos, pad_token_id=eos)
            new = out[0, len(ids):].tolist()  # like duet's output_ids: up to and including EOS
            res.append({"id": it["id"], "input_ids": ids, "output_ids": new,
                        "summary": tok.decode(new, skip_special_tokens=True),
                        "duet_output_ids_equal": new == it["output_ids"]})
            print(it["id"], len(ids), len(new), "equal" if new == it["output_ids"] else "DIFFERS", flush=True)
        json.dump({"max_input": ev["max_input"], "max_output": ev["max_output"], "prompt": ev.get("prompt", "summarize"),
                   "items": res, **meta}, open(os.path.join(a.out, a.eval_out), "w"), indent=1)
        print("summaries equal to duet's:", sum(r["duet_output_ids_equal"] for r in res), "of", len(res))


if __name__ == "__main__":
    sys.exit(main())
