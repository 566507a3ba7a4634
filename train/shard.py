"""FSDP for QLoRA, LoRA and full fine-tuning, and the trainable weights of a (possibly sharded) model.

How the model is wrapped (the FSDP-QLoRA recipe of Answer.AI, 2024, and the PEFT "FSDP + QLoRA" guide):
  * FSDP (v1, use_orig_params=True) flattens every wrapped unit into one tensor, so a unit must hold one dtype.
    The 4-bit weights are stored in the compute dtype (bitsandbytes `bnb_4bit_quant_storage`) and the rest of the
    base model is loaded in that dtype too (train.model.load_model), so a decoder layer is uniform;
  * every trainable leaf module (each LoRA A/B matrix, each PEFT modules_to_save copy) is its own FSDP unit, so
    fp32 trainable weights never share a flat tensor with frozen bf16 ones, and a checkpoint gathers only them;
  * decoder layers are units of their own (transformer_auto_wrap_policy); the embeddings, final norm and LM head
    stay in the root unit;
  * full fine-tuning under a mixed-precision spec uses FSDP's MixedPrecision (bf16/fp16 all-gather and compute,
    fp32 gradient reduction); `fsdp-offload` keeps the parameter shards in CPU memory (CPUOffload).
On a CPU (gloo backend) FSDP needs `device_id=cpu`; that is how the tests run it with two processes.

Weights are named by the *unwrapped* model's parameter names (taken before wrapping), so checkpoints written
by one world size load on any other.
"""
from __future__ import annotations

import functools
from typing import Any


def trainable_leaf(module) -> bool:
    """A module without children whose own weight trains (a LoRA A/B Linear, a modules_to_save copy)."""
    weight = getattr(module, "weight", None)
    return (next(iter(module.children()), None) is None and weight is not None
            and getattr(weight, "requires_grad", False))


def trainable_names(lm) -> dict[int, str]:
    """id(parameter) -> name in the unwrapped model, for every parameter that trains. Call before wrapping."""
    return {id(p): name for name, p in lm.named_parameters() if p.requires_grad}


def wrap_fsdp(loss_model, device: str, spec, autocast_dtype: str | None):
    """FSDP-wrap the loss module (see the module docstring)."""
    import torch
    from torch.distributed.fsdp import CPUOffload, FullyShardedDataParallel as FSDP, MixedPrecision
    from torch.distributed.fsdp.wrap import _or_policy, lambda_auto_wrap_policy, transformer_auto_wrap_policy

    layer_cls = {type(m) for m in loss_model.decoder.modules() if type(m).__name__.endswith("DecoderLayer")}
    policies = [functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=layer_cls)]
    if spec.method != "full":
        policies.insert(0, functools.partial(lambda_auto_wrap_policy, lambda_fn=trainable_leaf))
    policy = functools.partial(_or_policy, policies=policies)
    mixed = None
    if spec.method == "full" and autocast_dtype:
        low = getattr(torch, autocast_dtype)
        mixed = MixedPrecision(param_dtype=low, reduce_dtype=torch.float32, buffer_dtype=low)
    offload = CPUOffload(offload_params=True) if spec.parallel == "fsdp-offload" and device != "cpu" else None
    return FSDP(loss_model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device(device),
                mixed_precision=mixed, cpu_offload=offload, limit_all_gathers=True)


def _fsdp_units(wrapped) -> tuple[list, bool]:
    """The FSDP units holding trainable leaves, and whether they hold every trainable parameter."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    units = [u for u in FSDP.fsdp_modules(wrapped) if trainable_leaf(u.module)]
    covered = {id(p) for u in units for p in u.module.parameters()}
    every = all(id(p) in covered for p in wrapped.parameters() if p.requires_grad)
    return units, every


def gather_trainable(wrapped, names: dict[int, str], fsdp: bool) -> dict[str, Any]:
    """Full (unsharded) copies on the CPU of every trainable weight, by unwrapped name.

    Under FSDP every rank must call this (the unsharding is collective); only the trainable units are
    gathered, one at a time, so the frozen 4-bit base is never assembled. Full fine-tuning gathers the model
    (on GPUs into rank 0's CPU memory; the other ranks get an empty dict).
    """
    if not fsdp:
        return {names[id(p)]: p.detach().to("cpu", copy=True).contiguous()
                for p in wrapped.parameters() if id(p) in names}
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    out: dict[str, Any] = {}
    units, every = _fsdp_units(wrapped)
    # a unit summoned on its own before the root's first forward would be marked a root itself
    if every and getattr(wrapped, "_is_root", None):
        for unit in units:
            with FSDP.summon_full_params(unit, recurse=False, writeback=False):
                for p in unit.module.parameters():
                    if id(p) in names:
                        out[names[id(p)]] = p.detach().to("cpu", copy=True).contiguous()
        return out
    # Full fine-tuning: the whole model. On GPUs it is assembled in rank 0's CPU memory only (FSDP's
    # rank0_only + offload_to_cpu; the other ranks return {}); on CPUs every rank assembles it (rank0_only
    # with offload crashes gloo runs in torch 2.13, and CPU memory is what it would offload to anyway).
    import torch

    on_gpu = next(wrapped.parameters()).device.type != "cpu"
    with FSDP.summon_full_params(wrapped, recurse=True, writeback=False, rank0_only=on_gpu, offload_to_cpu=on_gpu):
        if torch.distributed.get_rank() == 0 or not on_gpu:
            for p in wrapped.parameters():
                if id(p) in names:
                    out[names[id(p)]] = p.detach().to("cpu", copy=True).contiguous()
    return out


def scatter_trainable(wrapped, names: dict[int, str], state: dict[str, Any], fsdp: bool) -> None:
    """Copy full weights (by unwrapped name) into the model, resharding under FSDP (every rank calls this)."""
    import torch

    wanted = set(names.values())
    missing = sorted(wanted - set(state))
    unknown = sorted(set(state) - wanted)
    if missing or unknown:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing[:3]}, unexpected {unknown[:3]}")

    def copy_into(params) -> None:
        with torch.no_grad():
            for p in params:
                if id(p) in names:
                    p.copy_(state[names[id(p)]].to(p.device, p.dtype))

    if not fsdp:
        copy_into(wrapped.parameters())
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    units, every = _fsdp_units(wrapped)
    if every and getattr(wrapped, "_is_root", None):
        for unit in units:
            with FSDP.summon_full_params(unit, recurse=False, writeback=True):
                copy_into(unit.module.parameters())
        return
    with FSDP.summon_full_params(wrapped, recurse=True, writeback=True):
        copy_into(wrapped.parameters())
