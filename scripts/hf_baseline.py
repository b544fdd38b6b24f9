#!/usr/bin/env python3
"""hf_baseline.py: the Hugging Face transformers baseline for `duet bench` (fp16, sdpa attention).

Builds a LLaMA of the given shape (default LLaMA-7B: hidden 4096, intermediate 11008, 32 layers,
32 heads, vocab 32000) with random weights directly on the GPU, and times, for each batch size and
(input, output) length pair: the prefill (one forward over the prompts, tokens/s), and generate()
end to end with exactly `output` new tokens (greedy, EOS ignored), from which decode ms/token =
(end-to-end - prefill) / (output - 1). Events and synchronisation around every region, warm-up first,
median of --repeat runs. Prints one JSON object per case (machine-readable) and a table last.

  python3 scripts/hf_baseline.py --batch 1 8 64 --lengths 8/50 923/100 --json hf_baseline.jsonl
"""
import argparse, json, statistics, sys, time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--intermediate", type=int, default=11008)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--lengths", nargs="+", default=["8/50", "923/100"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="also append the JSON lines to this file")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, vocab_size=a.vocab,
                      max_position_embeddings=4096, attn_implementation="sdpa")
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    print(f"# model built on {torch.cuda.get_device_name()} in {time.perf_counter() - t0:.1f} s; "
          f"transformers {transformers.__version__}, torch {torch.__version__}", file=sys.stderr, flush=True)
    rows = []
    out = open(a.json, "a") if a.json else None
    with torch.inference_mode():
        for lens in a.lengths:
            n_in, n_out = (int(x) for x in lens.split("/"))
            for b in a.batch:
                ids = torch.randint(3, a.vocab, (b, n_in), device="cuda")
                mask = torch.ones_like(ids)
                gen = lambda: model.generate(ids, attention_mask=mask, max_new_tokens=n_out, min_new_tokens=n_out,
                                             do_sample=False, pad_token_id=0, eos_token_id=None)
                pre = lambda: model(ids, attention_mask=mask, logits_to_keep=1)
                torch.cuda.reset_peak_memory_stats()
                gen()  # warm-up (also allocates the cache)
                t_pre = timed(pre, a.repeat)
                t_e2e = timed(gen, a.repeat)
                r = {"impl": "hf-transformers", "dtype": "fp16", "attn": "sdpa", "gpu": torch.cuda.get_device_name(),
                     "batch": b, "input": n_in, "output": n_out,
                     "prefill_tok_s": b * n_in / t_pre, "prefill_ms": 1e3 * t_pre,
                     "decode_ms_per_token": 1e3 * (t_e2e - t_pre) / max(n_out - 1, 1),
                     "e2e_s": t_e2e, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                     "transformers": transformers.__version__, "torch": torch.__version__}
                rows.append(r)
                print(json.dumps(r), flush=True)
                if out:
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                del ids, mask
                torch.cuda.empty_cache()
    print(f"{'batch':>5} {'in/out':>8} {'prefill tok/s':>14} {'decode ms/tok':>14} {'e2e s':>8} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['batch']:>5} {r['input']:>4}/{r['output']:<3} {r['prefill_tok_s']:>14.0f} "
              f"{r['decode_ms_per_token']:>14.2f} {r['e2e_s']:>8.2f} {r['peak_mem_gib']:>9.1f}")


if __name__ == "__main__":
    main()
