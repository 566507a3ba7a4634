"""Check the estimator against published measurements (../shared/data/measurements/published.csv).

Each row is turned into a job spec as faithfully as its source states it; rows the planner cannot
represent are excluded with the reason (FP8 compute, encoder-decoder models, torchtune's
optimizer-in-backward / chunked cross-entropy / activation offloading, wall-clock-only throughput).
Units are reconciled per source (see the measurements README): GiB vs GB (1e9), allocated vs reserved
vs nvidia-smi, per-GPU vs total tokens/s.

Also scores the two rules of thumb people use today on the same rows:
- accelerate `estimate-memory` training figure: 8 bytes per parameter (bf16 Adam, one device);
- the LLaMA-Factory README table: full 18x, LoRA 2x, QLoRA-4bit x/2 GB for an x-billion-parameter model.
"""
from __future__ import annotations

import csv
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # rows of models outside the registry must not reach a hub

from planner.estimator.estimate import evaluate  # noqa: E402
from planner.gpus import canonical_gpu, get_gpu
from planner.estimator.memory import CAL, GIB, estimate_memory, nf4_bits
from planner.models import ModelArch, resolve_model
from train.spec import JobSpec, SpecError, spec_from_dict

GB = 1e9

# Models in the rows that are not registry entries, as HF config values.
# MPT (llm-foundry benchmarking yamls): d_model, n_layers, n_heads, expansion 4, vocab 50368, tied, no bias.
_MPT = {"1b": (2048, 24, 16), "3b": (2560, 32, 20), "7b": (4096, 32, 32), "13b": (5120, 40, 40),
        "30b": (7168, 48, 64), "70b": (8192, 80, 64)}
# LLaMA 1 has Llama 2's shapes (vocab 32000) at 7B and 13B.
_ALIASES = {"decapoda-research/llama-7b-hf": "meta-llama/Llama-2-7b-hf",
            "decapoda-research/llama-13b-hf": "meta-llama/Llama-2-13b-hf"}


def _mpt_arch(size: str) -> ModelArch:
    d, layers, heads = _MPT[size]
    return ModelArch(name=f"mpt-{size}", model_type="mpt", vocab_size=50368, hidden_size=d, num_layers=layers,
                     num_heads=heads, num_kv_heads=heads, head_dim=d // heads, intermediate_size=4 * d,
                     gated_mlp=False, tie_embeddings=True, max_position_embeddings=8192, source="llm-foundry yaml",
                     norm="layernorm")


@dataclass
class Row:
    id: str
    raw: dict[str, str]
    arch: ModelArch | None = None
    spec: JobSpec | None = None
    mem_target_gib: float | None = None  # in GiB
    mem_metric: str = "allocated"  # allocated | reserved | smi (reserved + CUDA context)
    fit_label: bool | None = None  # HB rows: fits / OOM
    tps_target_per_gpu: float | None = None
    excluded: dict[str, str] = field(default_factory=dict)  # "memory"/"throughput" -> reason


def _first_int(text: str) -> int | None:
    m = re.search(r"\d+", text or "")
    return int(m.group()) if m else None


def _targets(text: str, model: str) -> str | list[str]:
    t = (text or "").lower()
    if "all linear" in t or "q,k,v,o + mlp" in t or "q,k,v,proj,mlp" in t:
        return "all-linear"
    if "gate,up,down" in t:
        return ["gate_proj", "up_proj", "down_proj"]
    if "q,v,output_proj,mlp" in t:
        return ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    if t.startswith("q,v") or "q,v at the time" in t or t in ("q,v",):
        return ["q_proj", "v_proj"]
    if "default cfg" in t:  # torchtune llama3_2 3B LoRA config: q, v, output_proj + MLP
        return ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return ["q_proj", "v_proj"]  # PEFT / notebook defaults for Llama


def _alpaca(model: str) -> tuple[int, int]:
    """(longest, mean) tokens of an unpacked Alpaca sample: the longest is 1304 tokens with the Llama 2
    tokenizer (litgpt resource tables); the mean ~270 (prompt template included). The Llama 3 tokenizer
    packs the same text into ~12% fewer tokens."""
    llama2 = "Llama-2" in model or "llama-7b" in model or "llama-13b" in model
    return (1304, 270) if llama2 else (1150, 240)


def _seq_len(text: str, model: str) -> tuple[int, int | None]:
    """(sequence length at the memory peak, mean example tokens or None)."""
    t = text or ""
    if "max_seq_len null" in t or t.strip().startswith("alpaca"):
        return _alpaca(model)
    m = re.search(r"longest sample \(Llama 2: (\d+)", t) or re.search(r"longest \((\d+) tok", t)
    if m:
        return int(m.group(1)), None
    mean = re.search(r"~(\d+) tok/sample", t)
    n = _first_int(t)
    return int(n or 2048), (int(mean.group(1)) if mean else None)


_GPU_MAP = [("RTX 4090", "RTX4090"), ("RTX A6000", "RTXA6000"), ("A100-SXM4-40GB", "A100"), ("A100 40GB", "A100"),
            ("A100-40GB", "A100"), ("A100", "A100-80GB"), ("A10G", "A10G"), ("L40S", "L40S"), ("T4", "T4"),
            ("H100", "H100"), ("not stated", "A100-80GB")]


# The stack each source measured with (planner/estimator/stacks.py), by the row id's source prefix.
_STACK_BY_SOURCE = {
    "TT": "torchtune",  # torchtune READMEs and tutorials
    "LG": "litgpt",  # litgpt config hub and resource tables
    "LF": "llama-factory",  # LLaMA-Factory's benchmark quoted by unsloth (2024-01)
    "PB": "hf-trainer",  # PEFT's method_comparison benchmark (2026, transformers 5 + PEFT)
    "HB": "hf-trainer-2024",  # HF blog (2023-05): TRL SFTTrainer on transformers 4.x
    "MF": "gpuplan",  # llm-foundry pre-training throughput only (no memory figure)
    "NM": "gpuplan",
    "PR": "hf-trainer-2024",
}


def source_of(row_id: str) -> str:
    """The publishing source of a row: its id's letters (TT, LG, PB, LF, HB, MF ...)."""
    return re.match(r"[A-Za-z]+", row_id).group().upper() if re.match(r"[A-Za-z]+", row_id) else row_id


# Tables whose recipes predate a source's current stack: torchtune's README table of 2024-05..08 (TT3) ran
# the v0.1-0.2 recipes (fp32 logits kept through backward, foreach AdamW, FSDP1).
_STACK_BY_TABLE = {"TT3": "torchtune-2024"}


def stack_of(row_id: str) -> str:
    table = row_id.split("-")[0].upper()
    return _STACK_BY_TABLE.get(table) or _STACK_BY_SOURCE.get(source_of(row_id), "gpuplan")


def _gpu(text: str) -> str:
    for key, name in _GPU_MAP:
        if key in text:
            return canonical_gpu(name)
    raise SpecError("gpu", f"unmapped GPU {text!r}")


def _parse(raw: dict[str, str]) -> Row:
    row = Row(id=raw["id"], raw=raw)
    model_id = raw["model_hf_id"]
    method = raw["method"].split()[0].lower()
    flags = (raw.get("other_flags") or "") + " " + raw.get("optimizer", "")
    # -- what the planner cannot represent --
    if raw["id"].startswith("NM") and "TP" in raw["other_flags"]:
        row.excluded["memory"] = row.excluded["throughput"] = "Megatron tensor/pipeline parallelism (not modelled)"
        return row
    if raw["id"].startswith("PR"):
        row.excluded["memory"] = row.excluded["throughput"] = "encoder-decoder (seq2seq) model"
        return row
    if "FP8" in raw["precision"]:
        row.excluded["memory"] = row.excluded["throughput"] = "FP8 compute (the planner models 16-bit)"
        return row
    if raw["id"].startswith("TT2") and raw["id"] not in ("TT2-1", "TT2-2", "TT2-3"):
        # torchtune's ablation table stacks each flag on the previous row; from TT2-4 on they include chunked
        # cross-entropy, then optimizer-in-backward and activation offloading, which the planner does not model.
        why = "torchtune ablation row stacking chunked CE / optimizer-in-backward / activation offloading"
        row.excluded["memory"] = row.excluded["throughput"] = why
        return row
    if "optimizer_in_bwd" in flags:
        row.excluded["memory"] = row.excluded["throughput"] = "torchtune optimizer-in-backward (no gradient buffers)"
        return row
    if "A6000" in raw["gpu"] and raw["id"].startswith("TT1"):
        # the measurements README: TT1 RTX A6000 rows imply an implausible efficiency for that card
        row.excluded["memory"] = row.excluded["throughput"] = "TT1 RTX A6000 rows flagged implausible (README)"
        return row
    if raw["id"] == "TT4-5":
        # the source: "reserved 9.29 GB ... model-init 9.13 GB": the reserved peak is set while loading and
        # quantising the model, not by the training step the planner estimates
        row.excluded["memory"] = "reserved peak set at model initialisation (source note), not by training"
    if method == "dora":
        method = "lora"
    # -- model --
    try:
        if model_id.startswith("MPT-"):
            row.arch = _mpt_arch(model_id.split()[0].split("-")[1])
        else:
            row.arch = resolve_model(_ALIASES.get(model_id, model_id))
    except SpecError:
        row.excluded["memory"] = row.excluded["throughput"] = f"model {model_id} not in the registry"
        return row
    # -- spec --
    seq, mean = _seq_len(raw["seq_len"], model_id)
    if raw["id"].startswith("TT") and raw["packing"].lower() in ("no",):
        # torchtune's recipes default to the Alpaca dataset, unpacked: batches are as long as their longest sample
        seq, mean = _alpaca(model_id)
    ckpt = raw["grad_ckpt"].lower()
    gc = ckpt.startswith("yes") or ckpt in ("unknown", "not stated")
    opt = raw["optimizer"]
    optimizer = ("paged-adamw-8bit" if "Paged" in opt else "adamw" if raw["id"].startswith("TT2")
                 else "adamw-8bit" if "8-bit" in opt or "8bit" in opt else "adamw")
    prec = raw["precision"].lower()
    precision = "bf16-mixed" if ("mixed" in prec or "amp_bf16" in prec) else "bf16"
    attn = raw["attn_impl"].lower()
    attention = "flash" if ("fa2" in attn or "flash" in attn) else "eager" if attn == "eager" else "sdpa"
    n_gpus = int(raw["n_gpus"] or 1)
    par = raw["parallelism"].lower()
    parallel = "fsdp-offload" if "offload" in opt.lower() else ("ddp" if par == "single" else "fsdp")
    ga = _first_int(raw["grad_accum"]) if raw["grad_accum"] and raw["grad_accum"][0].isdigit() else 1
    r = _first_int(raw["lora_r"]) or (32 if raw["id"].startswith("NM") else 8)
    row.spec = spec_from_dict({
        "model": model_id, "method": method, "lora_r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0 if
        raw["id"].startswith(("TT", "LG")) else 0.05, "lora_targets": _targets(raw["lora_targets"], model_id),
        "double_quant": "dq" in raw["quant"] or "double" in raw["quant"] or "torchao" in raw["quant"],
        "seq_len": seq, "batch_size": _first_int(raw["micro_batch"]) or 1, "grad_accum": ga or 1,
        "gradient_checkpointing": gc, "optimizer": optimizer, "precision": precision, "attention": attention,
        "packing": raw["packing"].lower().startswith("yes") or "full sequences" in raw["packing"],
        # torchtune recipes since v0.3 (2024-09) compute the loss with CEWithChunkedOutputLoss
        "chunked_loss": raw["id"].startswith("TT1"),
        "compile": "torch.compile" in flags or "+compile" in flags or "uses torch.compile" in raw.get("notes", ""),
        "mean_example_tokens": mean, "dataset_examples": 1000 if mean else None,
        "gpu": _gpu(raw["gpu"]), "gpus": min(n_gpus, 8), "nodes": max(1, n_gpus // 8), "parallel": parallel,
        "stack": stack_of(raw["id"]),
    })
    # -- memory target --
    mem, metric = raw["peak_mem_gb"], raw["mem_metric"]
    if metric.startswith("fit/OOM") or mem in ("OOM", "fits"):
        row.fit_label = mem == "fits"
    elif mem and "memory" not in row.excluded:
        value = float(mem)
        if "GiB" in metric or row.id.startswith("TT"):  # torchtune reports GiB (bytes / 2**30)
            row.mem_target_gib = value
        else:  # litgpt, PEFT, LLaMA-Factory report bytes / 1e9
            row.mem_target_gib = value * GB / GIB
        if "reserved" in metric.lower() or "accelerator_memory_max" in metric:
            row.mem_metric = "reserved"
        elif "GRAM" in metric:
            row.mem_metric = "smi"
    elif "memory" not in row.excluded:
        row.excluded["memory"] = "no memory figure"
    # -- throughput target (tokens/s per GPU) --
    unit = raw["throughput_unit"]
    if not raw["throughput"]:
        row.excluded["throughput"] = "no throughput figure"
    elif "wall-clock" in unit or "min per 1k" in unit:
        row.excluded["throughput"] = "wall-clock time only (ratios, not tokens/s)"
    else:
        value = float(raw["throughput"])
        # torchtune's TT1 key is tokens_per_second_per_gpu, but its multi-GPU rows exceed the cards' peak
        # FLOP/s per GPU (70B full at 1568 tok/s/GPU would need 6.6e14 FLOP/s on a 3.1e14 A100): totals.
        per_gpu = n_gpus == 1 or (not row.id.startswith("TT1") and ("per GPU" in unit or "/GPU" in unit
                                                                     or "TGS" in unit))
        row.tps_target_per_gpu = value if per_gpu else value / n_gpus
    return row


def load_rows(path: str | Path) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [_parse(r) for r in csv.DictReader(fh)]
    _flag_load_peaks(rows)
    _flag_below_floor(rows)
    return rows


def floor_gib(row: Row) -> float:
    """The least memory the stated configuration must hold at its peak, per GPU.

    Weights (sharded under FSDP) and optimizer states exist throughout; on top, either every gradient (at the
    optimizer step, full fine-tuning) or every decoder layer's saved input (16-bit hidden state per token, at
    the start of backward). Nothing else is counted, so a real run can only need more.
    """
    assert row.arch is not None and row.spec is not None
    mem = estimate_memory(row.arch, row.spec, get_gpu(row.spec.gpu or "A100-80GB"), row.spec.world_size)
    b = mem.breakdown_gib
    tokens = row.spec.seq_len * row.spec.batch_size
    inputs = row.arch.num_layers * 2 * row.arch.hidden_size * tokens / GIB
    grads = 0.0
    if row.spec.method == "full" and row.spec.parallel != "fsdp-offload":
        grads = row.arch.total_params() * (2 if row.spec.precision == "bf16" else 4) / row.spec.world_size / GIB
    return b["weights"] + b["adapter"] + b["optimizer"] + max(grads, inputs)


def _flag_below_floor(rows: list[Row]) -> None:
    """Exclude published peaks that are below what their stated configuration must hold: the run cannot
    have been that configuration (litgpt's full fine-tunes at 5-6.5 GB per billion parameters with AdamW in
    bf16; a torchtune 70B LoRA whose checkpointed hidden states alone exceed the figure)."""
    for r in rows:
        if r.spec is None or r.arch is None or r.mem_target_gib is None:
            continue
        floor = floor_gib(r)
        if r.mem_target_gib < floor:
            r.excluded["memory"] = (f"published {r.mem_target_gib:.1f} GiB is below the {floor:.1f} GiB the stated "
                                    "configuration must hold (weights + optimizer states + gradients or "
                                    "checkpointed layer inputs)")
            r.mem_target_gib = None


def _quantised_weights(r: Row) -> int:
    """Weights a source's QLoRA quantises: litgpt's bitsandbytes plugin replaces every linear layer in the
    blocks; torchtune (and, conservatively, any other source) quantises the LoRA-wrapped linears only."""
    assert r.arch is not None and r.spec is not None
    if r.id.startswith("LG"):
        return r.arch.quantized_params()
    targets = set(r.arch.resolve_targets(r.spec.lora_targets))
    per_layer = sum(g.weight_params * g.count for g in r.arch.linear_groups() if g.name in targets)
    return per_layer * r.arch.num_layers


def _flag_load_peaks(rows: list[Row]) -> None:
    """Exclude QLoRA memory figures that cannot be a training step's peak.

    A QLoRA step holds exactly the activations of the LoRA step of the same configuration, with smaller
    weights. So where a source publishes both (same source table, model, sequence, batch, rank, targets,
    checkpointing), the QLoRA training peak is at most the LoRA peak minus the bytes the 4-bit weights save.
    A QLoRA figure above that bound was set outside the training step -- typically while loading, when the
    16-bit checkpoint is materialised on the GPU before it is quantised.
    """
    def key(r: Row) -> tuple:
        sp = r.spec
        assert sp is not None
        return (r.id.split("-")[0], r.raw["model_hf_id"], sp.seq_len, sp.batch_size, sp.lora_r,
                str(sp.lora_targets), sp.gradient_checkpointing, r.mem_metric)

    lora = {key(r): r for r in rows if r.spec and r.spec.method == "lora" and r.mem_target_gib is not None}
    for r in rows:
        if not (r.spec and r.arch and r.spec.method == "qlora" and r.mem_target_gib is not None):
            continue
        twin = lora.get(key(r))
        if twin is None or twin.mem_target_gib is None:
            continue
        saved_gib = _quantised_weights(r) * (2 - nf4_bits(r.spec) / 8) / GIB
        bound = twin.mem_target_gib - saved_gib
        if r.mem_target_gib > bound * 1.1:
            r.excluded["memory"] = (f"above the training-step bound from its LoRA twin {twin.id} "
                                    f"({twin.mem_target_gib:.1f} - {saved_gib:.1f} GiB of 4-bit savings = "
                                    f"{bound:.1f} GiB): a load-time peak")
            r.mem_target_gib = None


@dataclass
class Scored:
    id: str
    kind: str  # memory | throughput | fit
    published: float | bool
    predicted: float | bool | str
    error_pct: float | None = None
    rule_accelerate_pct: float | None = None
    rule_llamafactory_pct: float | None = None
    source: str = ""
    stack: str = ""
    peak_moment: str = ""
    point_gib: float | None = None  # fit rows: the point estimate of reserved memory
    capacity_gib: float | None = None  # fit rows: the card


def _rules_gib(row: Row) -> tuple[float, float]:
    """The two rules of thumb, in GiB."""
    assert row.arch is not None and row.spec is not None
    n = row.arch.total_params()
    accel = 8 * n / GIB
    x = n / 1e9
    lf = {"full": 18 * x, "lora": 2 * x, "qlora": x / 2}[row.spec.method] * GB / GIB
    return accel, lf


def score(rows: list[Row]) -> list[Scored]:
    """Each row's prediction as shipped (no correction); fit calls with the band of all memory rows."""
    out: list[Scored] = []
    for row in rows:
        if row.spec is None or row.arch is None:
            continue
        plan = evaluate(row.arch, row.spec, row.spec.gpu or "A100-80GB", with_suggestions=False, with_limits=False)
        mem = plan.memory
        src, stack = source_of(row.id), row.spec.stack
        if row.mem_target_gib is not None:
            pred = {"allocated": mem.peak_allocated_gib, "reserved": mem.peak_reserved_gib,
                    "smi": mem.peak_reserved_gib + CAL.cuda_context_gib}[row.mem_metric]
            accel, lf = _rules_gib(row)
            t = row.mem_target_gib
            out.append(Scored(row.id, "memory", round(t, 2), round(pred, 2), _pct(pred, t), _pct(accel, t),
                              _pct(lf, t), source=src, stack=stack, peak_moment=mem.peak_moment))
        if row.fit_label is not None:
            out.append(Scored(row.id, "fit", row.fit_label, plan.fits, source=src, stack=stack,
                              peak_moment=mem.peak_moment, point_gib=mem.peak_reserved_gib,
                              capacity_gib=mem.capacity_gib))
        if row.tps_target_per_gpu is not None:
            t = row.tps_target_per_gpu
            pred = plan.throughput.tokens_per_s_per_gpu
            out.append(Scored(row.id, "throughput", round(t, 1), round(pred, 1), _pct(pred, t), source=src,
                              stack=stack))
    band = memory_band([s for s in out if s.kind == "memory"])
    for s in out:  # fit calls with the band measured in this same run (not the one stored from the last)
        if s.kind == "fit":
            s.predicted = fit_call_with_band(s, band)
    return out


def _pct(pred: float, target: float) -> float:
    return round(100 * (pred - target) / target, 1)


# ------------------------------------------------------------------------------------------------------
# calibration and leave-one-source-out
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fitted:
    """What "calibrating" on a set of rows fits: a memory scale, a speed scale and the error band."""

    memory_scale: float
    speed_scale: float
    band: tuple[float, float]


def _ratio(s: Scored) -> float:
    return float(s.published) / float(s.predicted)  # measured / predicted


def memory_band(memory_rows: list[Scored]) -> tuple[float, float]:
    from planner.estimator.bands import band_from_ratios

    return band_from_ratios([_ratio(s) for s in memory_rows if s.predicted])


def fit_call_with_band(s: Scored, band: tuple[float, float]) -> bool | str:
    assert s.point_gib is not None and s.capacity_gib is not None
    lo, hi = s.point_gib * band[0] + CAL.cuda_context_gib, s.point_gib * band[1] + CAL.cuda_context_gib
    if hi <= s.capacity_gib:
        return True
    return "tight" if lo <= s.capacity_gib else False


def calibrate_on(scored: list[Scored]) -> Fitted:
    mem = [s for s in scored if s.kind == "memory" and s.predicted]
    tps = [s for s in scored if s.kind == "throughput" and s.predicted]
    return Fitted(memory_scale=statistics.median(_ratio(s) for s in mem) if mem else 1.0,
                  speed_scale=statistics.median(_ratio(s) for s in tps) if tps else 1.0,
                  band=memory_band(mem))


def apply_fitted(fitted: Fitted, scored: list[Scored]) -> list[Scored]:
    """The rows re-predicted with `fitted`: predictions x scale, fit calls with its band."""
    out = []
    for s in scored:
        if s.kind == "memory":
            pred = float(s.predicted) * fitted.memory_scale
            out.append(Scored(s.id, s.kind, s.published, round(pred, 2), _pct(pred, float(s.published)),
                              source=s.source, stack=s.stack))
        elif s.kind == "throughput":
            pred = float(s.predicted) * fitted.speed_scale
            out.append(Scored(s.id, s.kind, s.published, round(pred, 1), _pct(pred, float(s.published)),
                              source=s.source, stack=s.stack))
        else:
            out.append(Scored(s.id, s.kind, s.published, fit_call_with_band(s, fitted.band), source=s.source,
                              stack=s.stack, point_gib=s.point_gib, capacity_gib=s.capacity_gib))
    return out


def in_sample(scored: list[Scored]) -> list[Scored]:
    """Calibrated on every row, scored on the same rows."""
    return apply_fitted(calibrate_on(scored), scored)


def leave_one_source_out(scored: list[Scored]) -> list[Scored]:
    """For each source: calibrate on the other sources' rows, score on this source's rows."""
    out: list[Scored] = []
    for src in sorted({s.source for s in scored}):
        held = [s for s in scored if s.source == src]
        rest = [s for s in scored if s.source != src]
        out += apply_fitted(calibrate_on(rest), held)
    return out


def _mape(xs: list[Scored]) -> float | None:
    return round(statistics.fmean(abs(s.error_pct) for s in xs), 1) if xs else None


def _median_ape(xs: list[Scored]) -> float | None:
    return round(statistics.median(abs(s.error_pct) for s in xs), 1) if xs else None


def _fit_counts(fit: list[Scored]) -> tuple[int, int, int]:
    """(called right, called "tight", called True on a published OOM)."""
    right = sum(1 for s in fit if s.predicted is s.published or (s.predicted is False and s.published is False))
    tight = sum(1 for s in fit if s.predicted == "tight")
    oom_fits = sum(1 for s in fit if s.predicted is True and s.published is False)
    return right, tight, oom_fits


def summary(scored: list[Scored]) -> dict[str, Any]:
    mem = [s for s in scored if s.kind == "memory"]
    tps = [s for s in scored if s.kind == "throughput"]
    fit = [s for s in scored if s.kind == "fit"]
    ins, loso = in_sample(scored), leave_one_source_out(scored)
    right, tight, oom_fits = _fit_counts(fit)
    l_right, l_tight, l_oom = _fit_counts([s for s in loso if s.kind == "fit"])
    band = memory_band(mem)
    under = [s for s in mem if s.error_pct is not None and s.error_pct < 0]
    return {
        "rows_memory": len(mem),
        "memory_mape_pct": _mape(mem),
        "memory_mape_accelerate_rule_pct": round(statistics.fmean(abs(s.rule_accelerate_pct) for s in mem), 1)
        if mem else None,
        "memory_mape_llamafactory_rule_pct": round(statistics.fmean(abs(s.rule_llamafactory_pct) for s in mem), 1)
        if mem else None,
        "memory_mape_insample_pct": _mape([s for s in ins if s.kind == "memory"]),
        "memory_mape_loso_pct": _mape([s for s in loso if s.kind == "memory"]),
        "memory_underestimates": len(under),
        "memory_worst_underestimate_pct": min((s.error_pct for s in under), default=None),
        "rows_throughput": len(tps),
        "throughput_median_ape_pct": _median_ape(tps),
        "throughput_median_ape_insample_pct": _median_ape([s for s in ins if s.kind == "throughput"]),
        "throughput_median_ape_loso_pct": _median_ape([s for s in loso if s.kind == "throughput"]),
        "rows_fit": len(fit),
        "fit_correct": right,
        "fit_tight": tight,
        "fits_called_on_oom": oom_fits,
        "fit_correct_loso": l_right,
        "fit_tight_loso": l_tight,
        "fits_called_on_oom_loso": l_oom,
        "band_low_ratio": band[0],
        "band_high_ratio": band[1],
        "sources": sorted({s.source for s in scored}),
    }
