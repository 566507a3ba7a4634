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
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from train import checkpoint as ckpt
from train.adapter_io import adapter_keys, read_weights, write_weights
from train.checks import check_trainable
from train.data import (Batch, DataStats, apply_chat_template_override, build_examples_with_stats, epoch_batches,
                        read_records, special_token_ids, split_examples)
from train.distributed import DistEnv, all_reduce_sum, barrier, init_distributed, shutdown
from train.metrics import SUMMARY_FILE, MetricsLog, write_summary
from train.model import check_new_tokens, load_base_for_merge, load_model, load_tokenizer, model_source
from train.optim import build_optimizer, build_scheduler
from train.precision import resolve_precision
from train.preemption import SAVE_MARGIN, PreemptionWatch, stop_grace_s
from train.shard import gather_trainable, scatter_trainable, trainable_names, wrap_fsdp
from train.spec import JobSpec, SpecError

KEEP_CHECKPOINTS = 2  # default number of complete checkpoints kept (newest first)


class Preempted(Exception):
    """Raised after SIGTERM once the checkpoint is saved (or skipped for lack of time); the CLI exits 143."""

    def __init__(self, step: int, saved: bool = True, last: int | None = None, why: str = "") -> None:
        if saved:
            text = f"preempted at step {step}; checkpoint-{step} saved"
        else:
            kept = f"checkpoint-{last} stays the newest" if last is not None else "no checkpoint yet"
            text = f"preempted at step {step}; save skipped ({why}); {kept}"
        super().__init__(text)
        self.step = step
        self.saved = saved


@dataclass
class TrainResult:
    output_dir: str
    summary: dict[str, Any]
    model: Any = None  # the trained (PEFT) model, kept when run(..., keep_model=True)
    tokenizer: Any = None
    already_complete: bool = False  # the output folder held a finished run; nothing was changed


@dataclass
class _Data:
    train: list
    eval: list
    pad_id: int
    micro_per_epoch: int
    stats: DataStats = field(default_factory=DataStats)
    special_ids: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict)


def _micro_batch(spec: JobSpec, data: _Data, index: int) -> Batch:
    """The global micro batch number `index` (epochs follow each other; each epoch is reshuffled)."""
    epoch, offset = divmod(index, data.micro_per_epoch)
    if epoch not in data._cache:
        data._cache = {epoch: epoch_batches(data.train, batch_size=spec.batch_size, seq_len=spec.seq_len,
                                            packing=spec.packing, pad_id=data.pad_id, seed=spec.seed, epoch=epoch,
                                            flatten_packed=spec.attention == "flash")}
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


def _save_checkpoint(env: DistEnv, out: str, step: int, lm, names: dict, keys: dict, wrapped, optimizer, scheduler, scaler,
                     state: dict, rng: dict, keep: int, fsdp: bool) -> float:
    """Write checkpoint-<step> (every rank takes part); returns the seconds it took.

    LoRA/QLoRA: the folder is a PEFT adapter (adapter_config.json + adapter_model.safetensors) plus the
    optimizer, scheduler, loss-scaler and RNG states. Under FSDP each rank writes its own optimizer shard.
    """
    import torch

    t0 = time.perf_counter()
    if env.is_main:
        ckpt.begin(out, step)
    barrier(env)
    tmp = ckpt.staging_dir(out, step)
    torch.save(rng, os.path.join(tmp, f"rng_state_{env.rank}.pt"))
    weights = gather_trainable(wrapped, names, fsdp) if (fsdp or env.is_main) else {}
    if fsdp:
        torch.save(optimizer.state_dict(), os.path.join(tmp, f"optimizer_rank{env.rank}.pt"))
    if env.is_main:
        write_weights(tmp, lm, weights, keys)
        if not fsdp:
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
        torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
        if scaler is not None:
            torch.save(scaler.state_dict(), os.path.join(tmp, "scaler.pt"))
    barrier(env)
    if env.is_main:
        ckpt.commit(out, step, {**state, "world_size": env.world_size, "optimizer_sharded": fsdp})
        ckpt.prune(out, keep)
    barrier(env)
    return time.perf_counter() - t0


def _load_checkpoint(env: DistEnv, path: str, optimizer, scheduler, scaler, fsdp: bool) -> tuple[dict, str | None]:
    """Restore the optimizer, schedule, scaler and RNG of a checkpoint onto any world size (the weights went
    into the unwrapped model before wrapping); returns (trainer state, a note when something was reset)."""
    import json

    import torch

    with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as fh:
        state = json.load(fh)
    saved_world = int(state.get("world_size", env.world_size))
    note = None
    if state.get("optimizer_sharded") or fsdp:
        shard = os.path.join(path, f"optimizer_rank{env.rank}.pt")
        if state.get("optimizer_sharded") and fsdp and saved_world == env.world_size and os.path.exists(shard):
            optimizer.load_state_dict(torch.load(shard, map_location="cpu", weights_only=False))
        else:  # sharded moments do not map onto another sharding: the weights resume, the moments restart
            note = (f"optimizer moments restart (saved by {saved_world} rank(s) "
                    f"{'sharded' if state.get('optimizer_sharded') else 'unsharded'}, resumed on {env.world_size} "
                    f"{'sharded' if fsdp else 'unsharded'}); weights, schedule and data position resume exactly")
    else:
        optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), map_location="cpu",
                                             weights_only=False))
    scheduler.load_state_dict(torch.load(os.path.join(path, "scheduler.pt"), weights_only=False))
    scaler_file = os.path.join(path, "scaler.pt")
    if scaler is not None and os.path.exists(scaler_file):
        scaler.load_state_dict(torch.load(scaler_file, weights_only=False))
    rng_file = os.path.join(path, f"rng_state_{env.rank}.pt")
    if os.path.exists(rng_file):  # absent when resuming on more ranks than were saved
        _set_rng_state(torch.load(rng_file, weights_only=False))
    return state, note


def _evaluate(env: DistEnv, loss_model, spec: JobSpec, data: _Data, autocast) -> float | None:
    """Mean eval loss over all ranks. Every rank runs the same number of forward passes (a rank whose share
    of an uneven split is short repeats a batch and discards it), so FSDP's collectives never wait forever."""
    import torch

    if not data.eval:
        return None
    batches = epoch_batches(data.eval, batch_size=spec.batch_size, seq_len=spec.seq_len, packing=False,
                            pad_id=data.pad_id, seed=spec.seed, epoch=0)
    per_rank = -(-len(batches) // env.world_size)
    total, count = 0.0, 0.0
    loss_model.eval()
    with torch.no_grad():
        for i in range(per_rank):
            index = i * env.world_size + env.rank
            real = index < len(batches)
            with autocast():
                loss_sum, n = loss_model(**_tensors(batches[index if real else 0], env.device))
            if real:
                total += float(loss_sum)
                count += float(n)
    loss_model.train()
    total, count = all_reduce_sum(env, [total, count])
    return total / count if count else None


def prepare_inputs(spec: JobSpec, source: str, world_size: int):
    """Tokenizer and data for a job (raises SpecError on any data problem)."""
    tokenizer = load_tokenizer(source)
    apply_chat_template_override(tokenizer, spec.data)
    rows = read_records(spec.data)
    examples, stats = build_examples_with_stats(rows, spec.data, tokenizer, spec.seq_len)
    train_set, eval_set = split_examples(examples, spec.data.eval_fraction, spec.seed)
    if not train_set:
        raise SpecError("data.eval_fraction", "leaves no training examples", "lower it or add examples")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    first = epoch_batches(train_set, batch_size=spec.batch_size, seq_len=spec.seq_len, packing=spec.packing,
                          pad_id=pad_id, seed=spec.seed, epoch=0)
    return tokenizer, _Data(train_set, eval_set, pad_id, len(first), stats, special_token_ids(examples, tokenizer))


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


def _finished(out: str, steps: int) -> dict | None:
    """The summary of a run in `out` that already reached `steps` (a rerun changes nothing), else None."""
    import json

    path = os.path.join(out, SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            summary = json.load(fh)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and int(summary.get("steps") or 0) >= steps else None


def _say(env: DistEnv, line: str) -> None:
    if env.is_main:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _run(spec: JobSpec, source: str, env: DistEnv, watch: PreemptionWatch, keep_checkpoints: int,
         progress: bool, keep_model: bool) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    # -- 1-2. inputs (all checks before the output folder is touched) ------------------------------
    device_type = "cuda" if env.device.startswith("cuda") else "cpu"
    fsdp = spec.parallel in ("fsdp", "fsdp-offload") and env.distributed
    if spec.parallel == "zero3":
        raise SpecError("parallel", "DeepSpeed ZeRO-3 is not part of the bundled trainer", "use fsdp (equivalent sharding)")
    tokenizer, data = prepare_inputs(spec, source, env.world_size)
    steps = total_steps(spec, data.micro_per_epoch, env.world_size)
    out = os.path.abspath(spec.output_dir)
    done_before = _finished(out, steps)
    if done_before is not None:  # nothing measured is overwritten
        return TrainResult(out, done_before, already_complete=True)
    _say(env, "data: " + data.stats.one_line())
    bf16_ok = device_type == "cuda" and torch.cuda.is_bf16_supported()
    precision = resolve_precision(spec, device_type, bf16_ok)

    # -- 3. model -------------------------------------------------------------------------------
    torch.manual_seed(spec.seed)  # identical LoRA init on every rank
    lm = load_model(spec, source, precision, env.device, fsdp=fsdp)
    check_new_tokens(lm, tokenizer, data.special_ids, spec)
    names = trainable_names(lm)
    keys = adapter_keys(lm, list(names.values()))
    if env.is_main:
        os.makedirs(out, exist_ok=True)
        ckpt.remove_stale(out)
    barrier(env)
    latest = ckpt.latest_checkpoint(out)
    if latest is not None:  # full weights into the unwrapped model on every rank; FSDP then shards them
        scatter_trainable(lm, names, read_weights(latest[1], keys), fsdp=False)
    loss_model = _loss_module(lm, spec)
    wrapped = _wrap(loss_model, env, spec, fsdp, precision.autocast_dtype)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, spec, device_type)
    scheduler = build_scheduler(optimizer, spec, steps)
    autocast_dtype = getattr(torch, precision.autocast_dtype) if precision.autocast_dtype else None
    scaler = None
    if precision.grad_scaler and fsdp:  # all ranks agree on skipping a step with an inf in any shard
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        scaler = ShardedGradScaler(device_type)
    elif precision.grad_scaler:
        scaler = torch.amp.GradScaler(device_type)

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=autocast_dtype)

    # -- 4. resume ------------------------------------------------------------------------------
    start, resumed_from, state = 0, None, {"tokens_seen": 0, "train_time_s": 0.0, "history": []}
    notes: list[str] = list(check_trainable(spec))  # warnings the CLI printed, kept with the measurement
    if latest is not None:
        state, note = _load_checkpoint(env, latest[1], optimizer, scheduler, scaler, fsdp)
        start = resumed_from = int(state["step"])
        if note:
            notes.append(f"resumed at step {start}: {note}")
            _say(env, f"warning: {notes[-1]}")
    else:
        torch.manual_seed(spec.seed + env.rank)  # dropout differs per rank
        random.seed(spec.seed + env.rank)
    history: list[dict] = list(state.get("history") or [])
    segment = _Segment(start, env.world_size, device_type)
    log = MetricsLog(out, keep_up_to_step=start) if env.is_main else None

    # -- 5. train -------------------------------------------------------------------------------
    micro_per_step = spec.grad_accum * env.world_size
    last_loss = state.get("last_loss")
    last_saved = start if latest is not None else None
    save_seconds: list[float] = []
    saved_clock = time.monotonic()
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bar = tqdm(total=steps, initial=start, desc="train", unit="step", disable=not (progress and env.is_main),
               dynamic_ncols=True)

    def save(at: int, rng: dict) -> None:
        nonlocal last_saved, saved_clock
        segment.peak(device_type)
        state.update(step=at, last_loss=last_loss, history=[*history, segment.record(at, "saved")])
        if log is not None:
            log.sync()
        save_seconds.append(_save_checkpoint(env, out, at, lm, names, keys, wrapped, optimizer, scheduler, scaler, state,
                                             rng, keep_checkpoints, fsdp))
        last_saved, saved_clock = at, time.monotonic()

    def stop_now(at: int, rng: dict) -> None:
        """SIGTERM: save at `at` if there is time before the kill and it is not saved yet, then exit 143."""
        if last_saved == at:
            raise Preempted(at, saved=True)
        estimate = max(save_seconds) if save_seconds else None
        left = stop_grace_s() - (time.monotonic() - (watch.requested_at or time.monotonic()))
        skip = float(env.is_main and estimate is not None and estimate * SAVE_MARGIN > left)
        if all_reduce_sum(env, [skip])[0] > 0:  # rank 0 decides for everyone
            raise Preempted(at, saved=False, last=last_saved,
                            why=f"a save takes ~{estimate:.0f} s and {max(left, 0):.0f} s of the grace are left")
        save(at, rng)
        raise Preempted(at, saved=True)

    wrapped.train()
    try:
        for step in range(start, steps):
            t0 = time.perf_counter()
            rng_at_start = _rng_state()  # a step abandoned mid-way resumes with the same dropout masks
            batches = [_micro_batch(spec, data, step * micro_per_step + a * env.world_size + env.rank)
                       for a in range(spec.grad_accum)]
            labels_global = all_reduce_sum(env, [float(sum(b.n_label_tokens for b in batches))])[0]
            loss_total = 0.0
            for a, batch in enumerate(batches):
                if a and all_reduce_sum(env, [float(watch.requested)])[0] > 0:  # between micro batches
                    optimizer.zero_grad(set_to_none=True)  # the step is abandoned; the checkpoint is at `step`
                    _set_rng_state(rng_at_start)
                    stop_now(step, rng_at_start)
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
            due = float(env.is_main and spec.save_every_minutes is not None
                        and time.monotonic() - saved_clock >= spec.save_every_minutes * 60)
            loss_total, tokens, stop, due = all_reduce_sum(
                env, [loss_total, float(sum(b.n_tokens for b in batches)), float(watch.requested), due])
            if device_type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            last_loss = loss_total / max(labels_global, 1.0)
            segment.add(dt, tokens)
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
            if stop and done != steps:
                stop_now(done, _rng_state())
            if (spec.save_steps and done % spec.save_steps == 0) or done == steps or due:
                save(done, _rng_state())
    finally:
        bar.close()
        if log is not None:
            log.close()

    # -- 6. outputs -----------------------------------------------------------------------------
    eval_loss = _evaluate(env, wrapped, spec, data, autocast)
    final_weights = gather_trainable(wrapped, names, fsdp) if (fsdp or env.is_main) else {}
    if env.is_main:
        _save_final(spec, source, lm, tokenizer, out, precision, final_weights, keys)
    segment.peak(device_type)
    history.append(segment.record(steps, "complete"))
    measured = _measured(history)
    summary = {
        "steps": steps,
        "resumed_from_step": resumed_from,
        "final_loss": last_loss,
        "eval_loss": eval_loss,
        "tokens_per_s": measured["tokens_per_s"],
        "step_time_s": measured["step_time_s"],
        "peak_memory_allocated_gib": measured["peak_memory_allocated_gib"],
        "peak_memory_reserved_gib": measured["peak_memory_reserved_gib"],
        "gpu": torch.cuda.get_device_name() if device_type == "cuda" else None,
        "gpu_count": env.world_size if device_type == "cuda" else 0,
        "world_size": env.world_size,
        "device": device_type,
        "parallel": ("fsdp" if fsdp else "ddp") if env.distributed else "single",
        "tokens_seen": state.get("tokens_seen"),
        "train_time_s": state.get("train_time_s"),
        "steps_this_run": segment.steps,
        "history": history,
        "data": data.stats.to_dict(),
        "notes": notes,
        "trainable_params": sum(t.numel() for t in final_weights.values()) if env.is_main else None,
        "precision": {"load": precision.load_dtype, "compute": precision.compute_dtype,
                      "autocast": precision.autocast_dtype},
        "spec": spec.to_dict(),
    }
    if env.is_main:
        write_summary(out, summary)
    barrier(env)
    return TrainResult(out, summary, lm if keep_model else None, tokenizer if keep_model else None)


@dataclass
class _Segment:
    """One process lifetime of a run (a start, or a resume): its steps, timed tokens and peak memory."""

    start: int
    world_size: int
    device: str
    steps: int = 0
    times: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    peak_alloc: float | None = None
    peak_reserved: float | None = None

    def add(self, seconds: float, tokens: float) -> None:
        self.steps += 1
        self.times.append(seconds)
        self.tokens.append(tokens)

    def peak(self, device_type: str) -> None:
        if device_type == "cuda":
            import torch

            self.peak_alloc = torch.cuda.max_memory_allocated() / 2**30
            self.peak_reserved = torch.cuda.max_memory_reserved() / 2**30

    def record(self, end: int, status: str) -> dict:
        # the first step of each process warms up (allocator, kernels, compile): it is not timed
        timed_t, timed_n = (self.times[1:], self.tokens[1:]) if len(self.times) > 1 else (self.times, self.tokens)
        return {"from_step": self.start, "to_step": end, "steps": self.steps, "status": status,
                "world_size": self.world_size, "device": self.device,
                "timed_steps": len(timed_t), "timed_tokens": float(sum(timed_n)), "timed_seconds": float(sum(timed_t)),
                "tokens_per_s": (sum(timed_n) / sum(timed_t)) if timed_t and sum(timed_t) > 0 else None,
                "peak_memory_allocated_gib": self.peak_alloc, "peak_memory_reserved_gib": self.peak_reserved}


def _measured(history: list[dict]) -> dict:
    """Throughput over every segment of the run (token-weighted), and the highest peak memory of any."""
    timed = [h for h in history if h.get("timed_steps") and h.get("timed_seconds")]
    seconds = sum(h["timed_seconds"] for h in timed)
    steps = sum(h["timed_steps"] for h in timed)
    peaks = [h["peak_memory_allocated_gib"] for h in history if h.get("peak_memory_allocated_gib") is not None]
    reserved = [h["peak_memory_reserved_gib"] for h in history if h.get("peak_memory_reserved_gib") is not None]
    return {"tokens_per_s": sum(h["timed_tokens"] for h in timed) / seconds if seconds else None,
            "step_time_s": seconds / steps if steps else None,
            "peak_memory_allocated_gib": max(peaks) if peaks else None,
            "peak_memory_reserved_gib": max(reserved) if reserved else None}


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


def _wrap(loss_model, env: DistEnv, spec: JobSpec, fsdp: bool, autocast_dtype: str | None = None):
    """DDP, FSDP (train.shard: QLoRA-capable), or the bare module on one process."""
    if not env.distributed:
        return loss_model
    import torch

    if fsdp:
        return wrap_fsdp(loss_model, env.device, spec, autocast_dtype)
    device_ids = [env.local_rank] if env.device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(loss_model, device_ids=device_ids)


def _clip(wrapped, params, max_norm: float, fsdp: bool) -> float:
    """Clip to max_norm and return the norm before clipping; max_norm <= 0 only measures (no clipping, as in
    Hugging Face's Trainer)."""
    import torch

    limit = max_norm if max_norm > 0 else float("inf")
    if fsdp:
        return float(wrapped.clip_grad_norm_(limit))
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


def _save_final(spec: JobSpec, source: str, lm, tokenizer, out: str, precision, weights: dict, keys: dict) -> None:
    """output_dir/adapter (LoRA/QLoRA: a PEFT adapter) or output_dir/model (full), plus output_dir/merged."""
    from train.fsio import fsync_tree

    name = "model" if spec.method == "full" else "adapter"
    final = os.path.join(out, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if spec.method == "full":
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        base.save_pretrained(tmp, state_dict=weights)
    else:
        os.makedirs(tmp)
        write_weights(tmp, lm, weights, keys)
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
