"""Trainable weights on disk: a PEFT adapter folder (LoRA/QLoRA) or a safetensors file of every weight (full).

Every checkpoint of a LoRA/QLoRA job is itself a PEFT adapter (`adapter_config.json` +
`adapter_model.safetensors`): `PeftModel.from_pretrained(base, "runs/job/checkpoint-300")` loads it on one
process whatever world size wrote it. The names inside are PEFT's (adapter name removed), produced by
`peft.get_peft_model_state_dict`; reading maps them back onto the model's parameter names.
"""
from __future__ import annotations

import os
from typing import Any

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FULL_WEIGHTS = "trainable.safetensors"  # full fine-tuning (and checkpoints written before adapters)


def is_peft(lm) -> bool:
    return hasattr(lm, "peft_config")


def adapter_keys(lm, names: list[str]) -> dict[str, str]:
    """model parameter name -> the key PEFT writes for it (mapped through PEFT's own function).

    Call it before the model is wrapped (DDP/FSDP rename modules, and PEFT matches on module names);
    empty for a model without adapters."""
    if not is_peft(lm):
        return {}
    from peft import get_peft_model_state_dict

    sentinels = {n: object() for n in names}
    mapped = get_peft_model_state_dict(lm, state_dict=sentinels, save_embedding_layers=False)
    by_id = {id(v): k for k, v in mapped.items()}
    return {n: by_id[id(s)] for n, s in sentinels.items() if id(s) in by_id}


def write_weights(folder: str, lm, trainable: dict[str, Any], keys: dict[str, str]) -> None:
    """Write the trainable weights into `folder` (an adapter for PEFT models; `keys` from adapter_keys)."""
    from safetensors.torch import save_file

    if not is_peft(lm):
        save_file(trainable, os.path.join(folder, FULL_WEIGHTS))
        return
    lost = sorted(set(trainable) - set(keys))
    if lost:
        raise RuntimeError(f"PEFT does not save {lost[:3]}: the adapter would be incomplete")
    save_file({keys[n]: t for n, t in trainable.items()}, os.path.join(folder, ADAPTER_WEIGHTS),
              metadata={"format": "pt"})
    lm.peft_config["default"].save_pretrained(folder)


def read_weights(folder: str, keys: dict[str, str]) -> dict[str, Any]:
    """The trainable weights in `folder`, by model parameter name (`keys` from adapter_keys)."""
    from safetensors.torch import load_file

    full = os.path.join(folder, FULL_WEIGHTS)
    if os.path.exists(full):
        return load_file(full)
    stored = load_file(os.path.join(folder, ADAPTER_WEIGHTS))
    return {n: stored[k] for n, k in keys.items() if k in stored}
