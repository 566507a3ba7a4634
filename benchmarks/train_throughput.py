"""Tokens/s and peak memory of the bundled QLoRA recipe next to a plain HF Trainer + PEFT QLoRA baseline.

Same random-weight model (Llama-3.2-1B shape by default, nothing downloaded), same synthetic
examples (variable lengths, loss on the second half of each example), same LoRA and optimizer, one
epoch each. The bundled recipe packs examples into full rows (position_ids reset per example, no
padding) and computes the loss only where there are labels, in chunks; the baseline pads each batch
and lets the model materialise full-vocabulary logits. Throughput counts real (non-pad) tokens and
leaves out the first (warm-up) step.

    python benchmarks/train_throughput.py            # GPU, Llama-3.2-1B shape
    python benchmarks/train_throughput.py --tiny     # CPU, toy shape (seconds)

Target (GPU): the recipe >= 1.3x the baseline's tokens/s at no more peak memory.
"""
from __future__ import annotations

import argparse
import json
import os
import random
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


def synthetic_examples(n: int, seq_len: int, vocab: int, seed: int = 0):
    """Lengths uniform in [seq_len/8, seq_len/2]: typical instruction data, where padding wastes a lot."""
    from train.data import IGNORE, Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(seq_len // 8, seq_len // 2)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        half = length // 2
        labels = [IGNORE] * half + ids[half:]
        out.append(Example(ids, labels[1:] + [IGNORE]))
    return out


def build_model_folder(shape: dict, folder: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    model.to(torch.bfloat16).save_pretrained(folder)


def _peak(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
    return None, None


def _reset(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_recipe(folder: str, examples, args, device: str) -> dict:
    import torch

    from train.data import epoch_batches
    from train.loss import LOSS_CHUNKS, CausalLMLoss
    from train.model import load_model
    from train.optim import build_optimizer
    from train.precision import resolve_precision
    from train.recipe import _tensors
    from train.spec import JobSpec

    _reset(device)
    spec = JobSpec(model=folder, method="qlora", seq_len=args.seq_len, batch_size=args.batch_size, packing=True,
                   chunked_loss=True, lora_r=16, lora_alpha=32, lora_dropout=0.0, optimizer="paged-adamw-8bit",
                   learning_rate=1e-4)
    dtype = "cuda" if device.startswith("cuda") else "cpu"
    precision = resolve_precision(spec, dtype, dtype == "cuda" and torch.cuda.is_bf16_supported())
    lm = load_model(spec, folder, precision, device)
    loss_model = CausalLMLoss(lm, chunks=LOSS_CHUNKS if spec.chunked_loss else 1).train()
    params = [p for p in loss_model.parameters() if p.requires_grad]
    opt = build_optimizer(params, spec, dtype)
    batches = epoch_batches(examples, batch_size=args.batch_size, seq_len=args.seq_len, packing=True, pad_id=0,
                            seed=0, epoch=0)
    autocast = torch.autocast(dtype, dtype=getattr(torch, precision.autocast_dtype)) if precision.autocast_dtype else None
    times, tokens = [], []
    for b in batches:
        t0 = time.perf_counter()
        if autocast:
            with torch.autocast(dtype, dtype=getattr(torch, precision.autocast_dtype)):
                loss_sum, n = loss_model(**_tensors(b, device))
        else:
            loss_sum, n = loss_model(**_tensors(b, device))
        (loss_sum / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dtype == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        tokens.append(b.n_tokens)
    del autocast
    alloc, reserved = _peak(device)
    return {"name": "gpuplan recipe (packed, chunked loss)", "steps": len(batches),
            "tokens_per_s": sum(tokens[1:]) / sum(times[1:]), "peak_allocated_gib": alloc, "peak_reserved_gib": reserved}


def run_baseline(folder: str, examples, args, device: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Trainer, TrainerCallback, TrainingArguments

    from train.data import IGNORE

    _reset(device)
    on_gpu = device.startswith("cuda")
    compute = torch.bfloat16 if (not on_gpu or torch.cuda.is_bf16_supported()) else torch.float16
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=compute, device_map={"": device},
                                                 quantization_config=BitsAndBytesConfig(
                                                     load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    # The baseline gets unshifted labels (the model shifts them) and pads every batch to its longest example.
    rows = [{"input_ids": ex.input_ids, "labels": [IGNORE] + ex.labels[:-1]} for ex in examples]

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        pad = [width - len(r["input_ids"]) for r in batch]
        return {"input_ids": torch.tensor([r["input_ids"] + [0] * p for r, p in zip(batch, pad)]),
                "labels": torch.tensor([r["labels"] + [IGNORE] * p for r, p in zip(batch, pad)]),
                "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * p for r, p in zip(batch, pad)])}

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):  # noqa: ANN002
            if on_gpu:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    per_device = max(1, args.batch_size * args.seq_len // max(1, int(sum(len(e.input_ids) for e in examples) / len(examples))))
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=per_device, num_train_epochs=1,
                                  learning_rate=1e-4, bf16=compute == torch.bfloat16 and on_gpu,
                                  fp16=compute == torch.float16, gradient_checkpointing=True,
                                  gradient_checkpointing_kwargs={"use_reentrant": False}, optim="paged_adamw_8bit",
                                  save_strategy="no", report_to=[], logging_strategy="no", use_cpu=not on_gpu,
                                  dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate, callbacks=[Clock()])
        trainer.train()
    total_tokens = sum(len(e.input_ids) for e in examples)
    steps = len(stamps)
    alloc, reserved = _peak(device)
    return {"name": f"HF Trainer + PEFT QLoRA (padded, batch {per_device})", "steps": steps,
            "tokens_per_s": total_tokens * (steps - 1) / steps / (stamps[-1] - stamps[0]),
            "peak_allocated_gib": alloc, "peak_reserved_gib": reserved}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy shape on the CPU (a check that the benchmark runs)")
    p.add_argument("--examples", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="packed rows per step (recipe)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    shape = TINY if args.tiny else LLAMA_32_1B
    args.seq_len = args.seq_len or (256 if args.tiny else 2048)
    args.batch_size = args.batch_size or (2 if args.tiny else 4)
    n = args.examples or (48 if args.tiny else 256)
    device = "cuda:0" if torch.cuda.is_available() and not args.tiny else "cpu"
    examples = synthetic_examples(n, args.seq_len, shape["vocab_size"])
    with tempfile.TemporaryDirectory(prefix="gpuplan-bench-") as folder:
        build_model_folder(shape, folder)
        ours = run_recipe(folder, examples, args, device)
        base = run_baseline(folder, examples, args, device)
    result = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
              "shape": "tiny" if args.tiny else "Llama-3.2-1B", "seq_len": args.seq_len, "examples": n,
              "recipe": ours, "baseline": base, "speedup": ours["tokens_per_s"] / base["tokens_per_s"]}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device {result['device']}, shape {result['shape']}, seq_len {args.seq_len}, {n} examples")
    for r in (ours, base):
        mem = f"{r['peak_allocated_gib']:.2f} GiB" if r["peak_allocated_gib"] is not None else "n/a (CPU)"
        print(f"  {r['name']:<45} {r['tokens_per_s']:>10.0f} tokens/s  peak {mem}  ({r['steps']} steps)")
    print(f"  speedup {result['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
