"""Tokens/s and peak memory of the bundled trainer's real loop next to HF Trainer with its own packing collator.

Both sides train the same QLoRA job (NF4 + double quant, LoRA r16 all-linear, gradient checkpointing,
paged AdamW 8-bit, bf16) on the same random-weight model (Llama-3.2-1B shape by default, nothing downloaded)
and the same synthetic text data, tokenized by the same tokenizer:
  * recipe   — `train.recipe.run` itself (the loop `python -m train` runs: packing into rows with position_ids
               restarting per example, the chunked loss, the checkpoint and metrics machinery), read back from
               its metrics.jsonl and summary.json;
  * baseline — `transformers.Trainer` + PEFT with `DataCollatorWithFlattening` (transformers' own packing:
               one flattened row per batch with position_ids), its batch sized to the same tokens per step.
Tokens are counted the same way on both sides: real input tokens per optimizer step (neither side pads).
The first --warmup steps of every run are left out; each side runs --repeats times and the median counts.
Peak memory is torch.cuda.max_memory_allocated/reserved from the start of training (after the model is loaded
and quantized; the recipe resets the counters there, the baseline at on_train_begin), None on the CPU.
On a GPU the planner's prediction for the recipe's run (`gpuplan check` on its summary.json) is recorded too.

    python benchmarks/train_throughput.py --out train_throughput.json   # one GPU: the measurement
    python benchmarks/train_throughput.py --tiny --json                  # CPU: a check that it runs (seconds)

Target (GPU): the recipe >= 1.3x the baseline's tokens/s at no more peak memory (an unverified claim until
this has run on a GPU; the JSON is the evidence).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Llama-3.2-1B (meta-llama/Llama-3.2-1B config.json)
LLAMA_32_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                   num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                   rope_theta=500000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, vocab_size=1024, max_position_embeddings=2048, tie_word_embeddings=True)
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
ATTN = {"flash": "flash_attention_2", "sdpa": "sdpa"}  # ids 0..3; word k >= 4 is "w<k>"


def build_model_folder(shape: dict, folder: str) -> None:
    """Random-weight Llama of `shape` and a word-level tokenizer over its whole vocabulary ("w123" -> 123)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    model.to(torch.bfloat16).save_pretrained(folder)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIALS), shape["vocab_size"])})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>")
    tok.save_pretrained(folder)


def write_dataset(path: str, n: int, seq_len: int, vocab: int, seed: int = 0) -> None:
    """Text records of random words, lengths uniform in [seq_len/8, seq_len/2] (typical instruction data)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            words = " ".join(f"w{rng.randrange(len(SPECIALS), vocab)}" for _ in range(rng.randint(seq_len // 8,
                                                                                              seq_len // 2)))
            fh.write(json.dumps({"text": words}) + "\n")


def _reset(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> tuple[float | None, float | None]:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
    return None, None


def _rate(tokens: list[float], seconds: list[float], warmup: int) -> float:
    t, n = seconds[warmup:], tokens[warmup:]
    return sum(n) / sum(t)


def job_spec(folder: str, data: str, out: str, args):
    from train.spec import DataSpec, JobSpec

    return JobSpec(model=folder, method="qlora", seq_len=args.seq_len, batch_size=args.batch_size, packing=True,
                   chunked_loss=True, attention=args.attention, lora_r=16, lora_alpha=32, lora_dropout=0.0, optimizer="paged-adamw-8bit",
                   precision="bf16", learning_rate=1e-4, max_steps=args.warmup + args.steps, save_steps=10**6,
                   save_every_minutes=None, gradient_checkpointing=True, output_dir=out,
                   data=DataSpec(path=data, format="text", eval_fraction=0.0))


def run_recipe(folder: str, data: str, args, device: str, out: str) -> dict:
    """One run of the real trainer loop (train.recipe.run) -> per-step tokens and times from its metrics."""
    from train.metrics import read_metrics
    from train.recipe import run

    _reset(device)
    result = run(job_spec(folder, data, out, args), progress=False)
    rows = [r for r in read_metrics(os.path.join(out, "metrics.jsonl")) if "loss" in r]
    tokens = [float(r["tokens"]) for r in rows]
    seconds = [float(r["step_time_s"]) for r in rows]
    alloc, reserved = _peak(device)
    return {"tokens_per_s": _rate(tokens, seconds, args.warmup), "steps": len(rows),
            "tokens_per_step": statistics.mean(tokens), "peak_allocated_gib": alloc, "peak_reserved_gib": reserved,
            "final_loss": result.summary["final_loss"], "summary": os.path.join(out, "summary.json")}


def run_baseline(folder: str, data: str, args, device: str) -> dict:
    """One run of HF Trainer + PEFT QLoRA with DataCollatorWithFlattening, same tokens per step."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, DataCollatorWithFlattening,
                              Trainer, TrainerCallback, TrainingArguments)

    _reset(device)
    on_gpu = device.startswith("cuda")
    compute = torch.bfloat16 if (not on_gpu or torch.cuda.is_bf16_supported()) else torch.float16
    tok = AutoTokenizer.from_pretrained(folder)
    with open(data, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    # the recipe's text format: <s> text </s>, every token trained (the collator masks each example's first label)
    rows = [{"input_ids": ids, "labels": ids} for ids in
            (tok(tok.bos_token + t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in texts)]
    mean_len = sum(len(r["input_ids"]) for r in rows) / len(rows)
    per_device = max(1, round(args.batch_size * args.seq_len / mean_len))  # the recipe's tokens per step
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=compute, device_map={"": device},
                                                 attn_implementation=ATTN[args.attention],
                                                 quantization_config=BitsAndBytesConfig(
                                                     load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    flatten = DataCollatorWithFlattening(return_position_ids=True)
    batch_tokens: list[int] = []

    def collate(features):
        batch = flatten(features)
        batch_tokens.append(int(batch["input_ids"].numel()))
        return batch

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):  # noqa: ANN002
            if on_gpu:  # as the recipe does: peak memory of training, not of loading and quantizing
                torch.cuda.reset_peak_memory_stats()
            stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):  # noqa: ANN002
            if on_gpu:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=per_device,
                                  max_steps=args.warmup + args.steps, learning_rate=1e-4,
                                  bf16=compute == torch.bfloat16 and on_gpu, fp16=compute == torch.float16,
                                  gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
                                  optim="paged_adamw_8bit", save_strategy="no", report_to=[], logging_strategy="no",
                                  use_cpu=not on_gpu, dataloader_num_workers=0, remove_unused_columns=False,
                                  disable_tqdm=True, seed=0)
        Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate, callbacks=[Clock()]).train()
    seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    tokens = [float(n) for n in batch_tokens[: len(seconds)]]
    alloc, reserved = _peak(device)
    return {"tokens_per_s": _rate(tokens, seconds, args.warmup), "steps": len(seconds),
            "tokens_per_step": statistics.mean(tokens), "examples_per_step": per_device,
            "peak_allocated_gib": alloc, "peak_reserved_gib": reserved}


def _median(runs: list[dict], name: str) -> dict:
    rates = [r["tokens_per_s"] for r in runs]
    peaks = [r["peak_allocated_gib"] for r in runs if r["peak_allocated_gib"] is not None]
    reserved = [r["peak_reserved_gib"] for r in runs if r["peak_reserved_gib"] is not None]
    return {"name": name, "tokens_per_s": statistics.median(rates), "tokens_per_s_runs": rates,
            "steps": runs[0]["steps"], "tokens_per_step": runs[0]["tokens_per_step"],
            "peak_allocated_gib": max(peaks) if peaks else None, "peak_reserved_gib": max(reserved) if reserved else None}


def planner_check(summary_path: str) -> dict | None:
    """The planner's prediction for the recipe's run (GPU runs only), as `gpuplan check` computes it."""
    try:
        from planner.check import check_run, read_summary

        return check_run(read_summary(summary_path))
    except Exception as exc:  # a GPU missing from the planner's table, a CPU run: recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy shape on the CPU (a check that the benchmark runs)")
    p.add_argument("--examples", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="packed rows per step (recipe)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (after the warm-up)")
    p.add_argument("--warmup", type=int, default=None, help="steps left out at the start of every run")
    p.add_argument("--repeats", type=int, default=None, help="runs per side; the median counts")
    p.add_argument("--attention", choices=sorted(ATTN), default=None,
                   help="both sides (default: flash on a GPU with flash_attn installed, else sdpa; the flattening "
                        "collator is made for flash attention's variable-length path)")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    shape = TINY if args.tiny else LLAMA_32_1B
    args.seq_len = args.seq_len or (256 if args.tiny else 2048)
    args.batch_size = args.batch_size or (2 if args.tiny else 4)
    args.steps = args.steps or (3 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    args.repeats = args.repeats or (1 if args.tiny else 3)
    device = "cuda:0" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.attention is None:
        import importlib.util

        args.attention = "flash" if device != "cpu" and importlib.util.find_spec("flash_attn") else "sdpa"
    # enough examples for every step of a run, plus slack for packing
    n = args.examples or int((args.warmup + args.steps) * args.batch_size * 8 * 1.3)
    with tempfile.TemporaryDirectory(prefix="gpuplan-bench-") as root:
        folder, data = os.path.join(root, "model"), os.path.join(root, "data.jsonl")
        build_model_folder(shape, folder)
        write_dataset(data, n, args.seq_len, shape["vocab_size"])
        ours_runs = [run_recipe(folder, data, args, device, os.path.join(root, f"recipe-{i}"))
                     for i in range(args.repeats)]
        base_runs = [run_baseline(folder, data, args, device) for _ in range(args.repeats)]
        check = planner_check(ours_runs[-1]["summary"]) if device.startswith("cuda") else None
    ours = _median(ours_runs, "gpuplan recipe (train.recipe.run: packed rows, chunked loss)")
    base = _median(base_runs, "HF Trainer + PEFT QLoRA (DataCollatorWithFlattening)")
    result = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
              "shape": "tiny" if args.tiny else "Llama-3.2-1B", "seq_len": args.seq_len, "examples": n,
              "batch_size": args.batch_size, "attention": args.attention, "warmup_steps": args.warmup, "timed_steps": args.steps,
              "repeats": args.repeats, "torch": torch.__version__,
              "recipe": ours, "baseline": base, "speedup": ours["tokens_per_s"] / base["tokens_per_s"],
              "memory_ratio": (ours["peak_allocated_gib"] / base["peak_allocated_gib"]
                               if ours["peak_allocated_gib"] and base["peak_allocated_gib"] else None),
              "planner": check}
    if args.out:
        from pricing.cache import write_atomic

        write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device {result['device']}, shape {result['shape']}, seq_len {args.seq_len}, {n} examples, "
          f"{args.repeats} run(s) x {args.steps} timed steps")
    for r in (ours, base):
        mem = f"{r['peak_allocated_gib']:.2f} GiB" if r["peak_allocated_gib"] is not None else "n/a (CPU)"
        print(f"  {r['name']:<62} {r['tokens_per_s']:>10.0f} tokens/s  peak {mem}")
    print(f"  speedup {result['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
