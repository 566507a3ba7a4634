"""The fine-tuning recipe, top to bottom: spec in -> adapter/model, checkpoints, metrics.jsonl, summary.json out.

1. check the inputs (model, data) before anything is written; 2. build batches; 3. load and prepare
the model; 4. resume from the newest complete checkpoint if there is one; 5. train: gradient
accumulation, exact loss normalisation over micro batches and ranks, clipping, optimizer, schedule;
a checkpoint every save_steps and on SIGTERM; 6. save the adapter (and merged model), write summary.json.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from train import checkpoint as ckpt
from train.data import Batch, build_examples, epoch_batches, read_records, split_examples
from train.distributed import DistEnv, all_reduce_sum, barrier, init_distributed, shutdown
from train.metrics import MetricsLog, write_summary
from train.model import (load_base_for_merge, load_model, load_tokenizer, load_trainable_state_dict, model_source,
                         trainable_state_dict)
from train.optim import build_optimizer, build_scheduler
from train.precision import resolve_precision
from train.preemption import PreemptionWatch
from train.spec import JobSpec, SpecError

KEEP_CHECKPOINTS = 2  # default number of complete checkpoints kept (newest first)


class Preempted(Exception):
    """Raised after the SIGTERM checkpoint is saved; the CLI exits with EXIT_PREEMPTED."""

    def __init__(self, step: int) -> None:
        super().__init__(f"preempted at step {step}; checkpoint saved")
        self.step = step


@dataclass
class TrainResult:
    output_dir: str
    summary: dict[str, Any]
    model: Any = None  # the trained (PEFT) model, kept when run(..., keep_model=True)
    tokenizer: Any = None


@dataclass
class _Data:
    train: list
    eval: list
    pad_id: int
    micro_per_epoch: int
    _cache: dict = field(default_factory=dict)


def _micro_batch(spec: JobSpec, data: _Data, index: int) -> Batch:
    """The global micro batch number `index` (epochs follow each other; each epoch is reshuffled)."""
    epoch, offset = divmod(index, data.micro_per_epoch)
    if epoch not in data._cache:
        data._cache = {epoch: epoch_batches(data.train, batch_size=spec.batch_size, seq_len=spec.seq_len,
                                            packing=spec.packing, pad_id=data.pad_id, seed=spec.seed, epoch=epoch)}
    batches = data._cache[epoch]
    return batches[offset % len(batches)]


def _tensors(batch: Batch, device: str) -> dict:
    import torch

    out = {
        "input_ids": torch.tensor(batch.input_ids, dtype=torch.long, device=device),
        "labels": torch.tensor(batch.labels, dtype=torch.long, device=device),
        "position_ids": torch.tensor(batch.position_ids, dtype=torch.long, device=device),
    }
    if batch.attention_mask is not None:
        out["attention_mask"] = torch.tensor(batch.attention_mask, dtype=torch.long, device=device)
    return out


def _rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _save_checkpoint(env: DistEnv, out: str, step: int, lm, optimizer, scheduler, state: dict, keep: int,
                     fsdp: bool) -> None:
    import torch
    from safetensors.torch import save_file

    if env.is_main:
        ckpt.begin(out, step)
    barrier(env)
    tmp = ckpt.staging_dir(out, step)
    torch.save(_rng_state(), os.path.join(tmp, f"rng_state_{env.rank}.pt"))
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        optim_state = FSDP.optim_state_dict(state["_wrapped"], optimizer)  # collective
        with FSDP.summon_full_params(state["_wrapped"], writeback=False, rank0_only=True, offload_to_cpu=True):
            weights = trainable_state_dict(lm) if env.is_main else None
    else:
        optim_state = optimizer.state_dict() if env.is_main else None
        weights = trainable_state_dict(lm) if env.is_main else None
    if env.is_main:
        save_file(weights, os.path.join(tmp, "trainable.safetensors"))
        torch.save(optim_state, os.path.join(tmp, "optimizer.pt"))
        torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
    barrier(env)
    if env.is_main:
        ckpt.commit(out, step, {k: v for k, v in state.items() if not k.startswith("_")})
        ckpt.prune(out, keep)
    barrier(env)


def _load_checkpoint(env: DistEnv, path: str, lm, optimizer, scheduler, wrapped, fsdp: bool) -> dict:
    import json

    import torch
    from safetensors.torch import load_file

    load_trainable_state_dict(lm, load_file(os.path.join(path, "trainable.safetensors")))
    optim_state = torch.load(os.path.join(path, "optimizer.pt"), map_location="cpu", weights_only=False)
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        optim_state = FSDP.optim_state_dict_to_load(wrapped, optimizer, optim_state)
    optimizer.load_state_dict(optim_state)
    scheduler.load_state_dict(torch.load(os.path.join(path, "scheduler.pt"), weights_only=False))
    rng_file = os.path.join(path, f"rng_state_{env.rank}.pt")
    if os.path.exists(rng_file):  # absent when resuming on more ranks than were saved
        _set_rng_state(torch.load(rng_file, weights_only=False))
    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _evaluate(env: DistEnv, loss_model, spec: JobSpec, data: _Data, autocast) -> float | None:
    import torch

    if not data.eval:
        return None
    batches = epoch_batches(data.eval, batch_size=spec.batch_size, seq_len=spec.seq_len, packing=False,
                            pad_id=data.pad_id, seed=spec.seed, epoch=0)
    total, count = 0.0, 0.0
    loss_model.eval()
    with torch.no_grad():
        for b in batches[env.rank::env.world_size]:
            with autocast():
                loss_sum, n = loss_model(**_tensors(b, env.device))
            total += float(loss_sum)
            count += float(n)
    loss_model.train()
    total, count = all_reduce_sum(env, [total, count])
    return total / count if count else None


def prepare_inputs(spec: JobSpec, source: str, world_size: int):
    """Tokenizer and data for a job (raises SpecError on any data problem)."""
    tokenizer = load_tokenizer(source)
    rows = read_records(spec.data)
    examples = build_examples(rows, spec.data, tokenizer, spec.seq_len)
    train_set, eval_set = split_examples(examples, spec.data.eval_fraction, spec.seed)
    if not train_set:
        raise SpecError("data.eval_fraction", "leaves no training examples", "lower it or add examples")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    first = epoch_batches(train_set, batch_size=spec.batch_size, seq_len=spec.seq_len, packing=spec.packing,
                          pad_id=pad_id, seed=spec.seed, epoch=0)
    return tokenizer, _Data(train_set, eval_set, pad_id, len(first))


def total_steps(spec: JobSpec, micro_per_epoch: int, world_size: int) -> int:
    if spec.max_steps:
        return spec.max_steps
    steps_per_epoch = max(1, micro_per_epoch // (spec.grad_accum * world_size))
    return max(1, math.ceil(spec.epochs * steps_per_epoch))


def run(spec: JobSpec, *, keep_checkpoints: int = KEEP_CHECKPOINTS, progress: bool = True,
        keep_model: bool = False) -> TrainResult:
    """Train the job `spec` describes. Raises SpecError (bad input, nothing written) or Preempted."""
    watch = PreemptionWatch().install()
    try:
        # Before the process group exists: transformers' save_pretrained writes only on rank 0 once it does,
        # and every rank builds its own copy of the smoke model.
        with model_source(spec) as source:
            env = init_distributed()
            try:
                return _run(spec, source, env, watch, keep_checkpoints, progress, keep_model)
            finally:
                shutdown(env)
    finally:
        watch.uninstall()


def _run(spec: JobSpec, source: str, env: DistEnv, watch: PreemptionWatch, keep_checkpoints: int,
         progress: bool, keep_model: bool) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    # -- 1-2. inputs (all checks before the output folder is touched) ------------------------------
    device_type = "cuda" if env.device.startswith("cuda") else "cpu"
    fsdp = spec.parallel in ("fsdp", "fsdp-offload") and env.distributed
    if spec.parallel == "zero3":
        raise SpecError("parallel", "DeepSpeed ZeRO-3 is not part of the bundled trainer", "use fsdp (equivalent sharding)")
    if fsdp and device_type == "cpu":
        # PyTorch's FSDP (v1) refuses to wrap a model without an accelerator
        raise SpecError("parallel", f"{spec.parallel} needs GPUs and this run has none",
                        "use parallel: ddp on CPUs (or run on GPUs)")
    tokenizer, data = prepare_inputs(spec, source, env.world_size)
    steps = total_steps(spec, data.micro_per_epoch, env.world_size)
    bf16_ok = device_type == "cuda" and torch.cuda.is_bf16_supported()
    precision = resolve_precision(spec, device_type, bf16_ok)
    out = os.path.abspath(spec.output_dir)

    # -- 3. model -------------------------------------------------------------------------------
    torch.manual_seed(spec.seed)  # identical LoRA init on every rank
    lm = load_model(spec, source, precision, env.device, fsdp=fsdp)
    loss_model = _loss_module(lm, spec)
    wrapped = _wrap(loss_model, env, spec, fsdp)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, spec, device_type)
    scheduler = build_scheduler(optimizer, spec, steps)
    autocast_dtype = getattr(torch, precision.autocast_dtype) if precision.autocast_dtype else None
    scaler = torch.amp.GradScaler(device_type) if precision.grad_scaler else None

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=autocast_dtype)

    # -- 4. resume ------------------------------------------------------------------------------
    if env.is_main:
        os.makedirs(out, exist_ok=True)
        ckpt.remove_stale(out)
    barrier(env)
    latest = ckpt.latest_checkpoint(out)
    start, resumed_from, state = 0, None, {"tokens_seen": 0, "train_time_s": 0.0}
    if latest is not None:
        state = _load_checkpoint(env, latest[1], lm, optimizer, scheduler, wrapped, fsdp)
        start = resumed_from = int(state["step"])
    else:
        torch.manual_seed(spec.seed + env.rank)  # dropout differs per rank
        random.seed(spec.seed + env.rank)
    log = MetricsLog(out, keep_up_to_step=start) if env.is_main else None

    # -- 5. train -------------------------------------------------------------------------------
    micro_per_step = spec.grad_accum * env.world_size
    step_times: list[float] = []
    step_tokens: list[float] = []
    last_loss = state.get("last_loss")
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bar = tqdm(total=steps, initial=start, desc="train", unit="step", disable=not (progress and env.is_main),
               dynamic_ncols=True)
    wrapped.train()
    try:
        for step in range(start, steps):
            t0 = time.perf_counter()
            batches = [_micro_batch(spec, data, step * micro_per_step + a * env.world_size + env.rank)
                       for a in range(spec.grad_accum)]
            labels_global = all_reduce_sum(env, [float(sum(b.n_label_tokens for b in batches))])[0]
            loss_total = 0.0
            for a, batch in enumerate(batches):
                sync = a == len(batches) - 1 or not env.distributed or fsdp
                with (contextlib.nullcontext() if sync else wrapped.no_sync()), autocast():
                    loss_sum, _n = wrapped(**_tensors(batch, env.device))
                # DDP averages gradients over ranks; scale so the result is the mean over all label tokens.
                scaled = loss_sum * (env.world_size / max(labels_global, 1.0))
                (scaler.scale(scaled) if scaler else scaled).backward()
                loss_total += float(loss_sum.detach())
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = _clip(wrapped, params, spec.max_grad_norm, fsdp)
            lr = scheduler.get_last_lr()[0]
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_total, tokens, stop = all_reduce_sum(
                env, [loss_total, float(sum(b.n_tokens for b in batches)), float(watch.requested)])
            if device_type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            last_loss = loss_total / max(labels_global, 1.0)
            step_times.append(dt)
            step_tokens.append(tokens)
            state["tokens_seen"] = state.get("tokens_seen", 0) + int(tokens)
            state["train_time_s"] = state.get("train_time_s", 0.0) + dt
            done = step + 1
            if log is not None and (done % spec.logging_steps == 0 or done == steps or stop):
                log.write({"step": done, "loss": round(last_loss, 6), "lr": lr, "tokens": int(tokens),
                           "tokens_per_s": round(tokens / dt, 2), "grad_norm": grad_norm,
                           "step_time_s": round(dt, 4)})
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
            if spec.eval_steps and done % spec.eval_steps == 0 and done != steps:
                eval_loss = _evaluate(env, wrapped, spec, data, autocast)
                if log is not None and eval_loss is not None:
                    log.write({"step": done, "eval_loss": round(eval_loss, 6)})
            if done % spec.save_steps == 0 or done == steps or stop:
                state.update(step=done, last_loss=last_loss)
                if log is not None:
                    log.sync()
                _save_checkpoint(env, out, done, lm, optimizer, scheduler, {**state, "_wrapped": wrapped},
                                 keep_checkpoints, fsdp)
            if stop and done != steps:
                raise Preempted(done)
    finally:
        bar.close()
        if log is not None:
            log.close()

    # -- 6. outputs -----------------------------------------------------------------------------
    eval_loss = _evaluate(env, wrapped, spec, data, autocast)
    if env.is_main:
        _save_final(spec, source, lm, tokenizer, out, precision)
    timed = list(zip(step_times, step_tokens))[1:] or list(zip(step_times, step_tokens))  # first step warms up
    step_time = statistics.mean(t for t, _ in timed) if timed else None
    tokens_per_s = (sum(n for _, n in timed) / sum(t for t, _ in timed)) if timed else None
    summary = {
        "steps": steps,
        "resumed_from_step": resumed_from,
        "final_loss": last_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": tokens_per_s,
        "step_time_s": step_time,
        "peak_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if device_type == "cuda" else None,
        "peak_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if device_type == "cuda" else None,
        "gpu": torch.cuda.get_device_name() if device_type == "cuda" else None,
        "gpu_count": env.world_size if device_type == "cuda" else 0,
        "world_size": env.world_size,
        "device": device_type,
        "tokens_seen": state.get("tokens_seen"),
        "train_time_s": state.get("train_time_s"),
        "steps_this_run": len(step_times),
        "trainable_params": sum(p.numel() for p in params),
        "precision": {"load": precision.load_dtype, "compute": precision.compute_dtype,
                      "autocast": precision.autocast_dtype},
        "spec": spec.to_dict(),
    }
    if env.is_main:
        write_summary(out, summary)
    barrier(env)
    return TrainResult(out, summary, lm if keep_model else None, tokenizer if keep_model else None)


def _loss_module(lm, spec: JobSpec):
    from train.loss import LOSS_CHUNKS, CausalLMLoss

    loss_model = CausalLMLoss(lm, chunks=LOSS_CHUNKS if spec.chunked_loss else 1)
    if spec.compile:
        _compile_layers(loss_model)
    return loss_model


def _compile_layers(loss_model) -> None:
    """torch.compile each decoder layer in place (as torchtune does): the layers are identical, so one
    compiled graph serves all of them, and the loss, data and optimizer code stays eager.
    GPUPLAN_COMPILE_BACKEND picks the backend (default inductor; "eager" checks the wiring quickly)."""
    backend = os.environ.get("GPUPLAN_COMPILE_BACKEND", "inductor")
    layers = [m for m in loss_model.decoder.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile(backend=backend)


def _wrap(loss_model, env: DistEnv, spec: JobSpec, fsdp: bool):
    """DDP, or FSDP (QLoRA-capable: 4-bit weights stored in the compute dtype), or the bare module."""
    if not env.distributed:
        return loss_model
    import torch

    device_ids = [env.local_rank] if env.device.startswith("cuda") else None
    if not fsdp:
        return torch.nn.parallel.DistributedDataParallel(loss_model, device_ids=device_ids)
    import functools

    from torch.distributed.fsdp import CPUOffload, FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    layer_cls = {type(m) for m in loss_model.decoder.modules() if type(m).__name__.endswith("DecoderLayer")}
    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=layer_cls)
    return FSDP(loss_model, auto_wrap_policy=policy, use_orig_params=True,
                device_id=torch.device(env.device) if device_ids else None,
                cpu_offload=CPUOffload(offload_params=True) if spec.parallel == "fsdp-offload" else None)


def _clip(wrapped, params, max_norm: float, fsdp: bool) -> float:
    import torch

    if fsdp:
        return float(wrapped.clip_grad_norm_(max_norm))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


def _save_final(spec: JobSpec, source: str, lm, tokenizer, out: str, precision) -> None:
    """output_dir/adapter (LoRA/QLoRA) or output_dir/model (full), plus output_dir/merged when asked."""
    from train.fsio import fsync_tree

    name = "model" if spec.method == "full" else "adapter"
    final = os.path.join(out, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if spec.method == "full":
        lm.save_pretrained(tmp)
    else:  # the embeddings are not trained; skip peft's look-up of the base config on the hub
        lm.save_pretrained(tmp, save_embedding_layers=False)
    tokenizer.save_pretrained(tmp)
    fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if spec.merge_adapter and spec.method != "full":
        from peft import PeftModel

        base = load_base_for_merge(spec, source, precision.compute_dtype)
        merged = PeftModel.from_pretrained(base, final).merge_and_unload()
        mtmp = os.path.join(out, "merged.tmp")
        shutil.rmtree(mtmp, ignore_errors=True)
        merged.save_pretrained(mtmp)
        tokenizer.save_pretrained(mtmp)
        fsync_tree(mtmp)
        shutil.rmtree(os.path.join(out, "merged"), ignore_errors=True)
        os.replace(mtmp, os.path.join(out, "merged"))
