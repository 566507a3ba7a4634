"""The bundled trainer's model, optimizer and loss, built on the meta device (shapes and dtypes, no bytes).

`train.model.load_model` is called as it is: the only thing swapped is the weight download.
Inside `meta_from_pretrained`, `AutoModelForCausalLM.from_pretrained` builds the model from its config on
the meta device in the requested dtype, and for QLoRA runs transformers' own bitsandbytes quantizer
(`replace_with_bnb_linear` via the HF quantizer, the same modules_to_not_convert) and quantizes every
`Linear4bit` weight with bitsandbytes' real `Params4bit._quantize` (bitsandbytes >= 0.50 registers fake
kernels for its 4-bit ops, so the packed uint8 data, absmax and double-quantization state have their real
shapes and dtypes). Everything after that — prepare_model_for_kbit_training's fp32 casts, checkpointing,
PEFT wrapping, the loss module, the optimizer — is the trainer's own code.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from train.spec import JobSpec, SpecError


def hf_config_values(model: str) -> dict[str, Any]:
    """The HF config.json values of `model`: a registry id or alias, a config.json, or a model folder."""
    from planner import models

    hf_id = models._lookup(model) if not os.path.exists(model) else None
    if hf_id is not None:
        cfg = dict(models._registry().configs[hf_id])
    else:
        path = Path(model)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file() and not os.path.exists(model) and "/" in model:
            path = _hub_config(model) or path
        if not path.is_file():
            raise SpecError("model", f"cannot simulate {model!r}: not in the registry, no config.json there and "
                            "none in the local Hugging Face cache",
                            "use a registry id (planner/data/models.json) or give a config.json or model folder")
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            raise SpecError("model", f"{path} is not a JSON config", "pass a model's config.json") from None
        if not isinstance(cfg, dict):
            raise SpecError("model", f"{path} is not a JSON object", "pass a model's config.json")
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrapper: the text decoder is what trains
        cfg = dict(cfg["text_config"])
    if not isinstance(cfg.get("model_type"), str) or not cfg["model_type"]:
        raise SpecError("model", f"{model}: config has no model_type", "pass the model's config.json")
    return cfg


def _hub_config(repo_id: str) -> Path | None:
    """config.json of a hub id from the local Hugging Face cache (never the network), or None."""
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, "config.json", local_files_only=True))
    except Exception:  # not cached, bad id, huggingface_hub missing
        return None


def hf_config(values: dict[str, Any], layers: int | None = None):
    """A transformers config from config.json values, optionally cut to `layers` decoder layers."""
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type")
    values.pop("architectures", None)
    values.pop("quantization_config", None)
    total = int(values.get("num_hidden_layers") or 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = AutoConfig.for_model(model_type, **values)
    total = int(getattr(config, "num_hidden_layers", total) or total)
    if layers is not None and layers < total:
        config.num_hidden_layers = layers
        kinds = getattr(config, "layer_types", None)
        if isinstance(kinds, (list, tuple)):
            config.layer_types = list(kinds[:layers])
    return config


def _quantize_on_meta(model, quantization_config, device: str = "meta") -> None:
    """What from_pretrained does with a BitsAndBytesConfig, minus the weights: swap and quantize linears."""
    import bitsandbytes as bnb
    import torch
    from transformers.quantizers import AutoHfQuantizer

    # bitsandbytes caches the 8-bit "dynamic" code map of double quantization on the device of the FIRST call
    # (bitsandbytes.functional.quantize_blockwise: `name2qmap["dynamic"] = create_dynamic_map().to(A.device)`):
    # created on meta, every later real quantization in this process fails ("Cannot copy out of meta tensor").
    # Cache it on the CPU first; each call moves it to its own device (`code.to(A.device)`).
    from bitsandbytes import functional as bnb_functional

    if "dynamic" not in bnb_functional.name2qmap:
        bnb_functional.name2qmap["dynamic"] = bnb_functional.create_dynamic_map()
    quantizer = AutoHfQuantizer.from_config(copy.deepcopy(quantization_config))
    quantizer.preprocess_model(model, dtype=quantization_config.bnb_4bit_compute_dtype, device_map=None)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            old = module.weight
            dense = torch.empty(module.out_features, module.in_features, dtype=quantization_config.bnb_4bit_compute_dtype,
                                device=device)
            param = bnb.nn.Params4bit(dense, requires_grad=False, blocksize=old.blocksize,
                                      compress_statistics=old.compress_statistics, quant_type=old.quant_type,
                                      quant_storage=old.quant_storage, module=module)
            param._quantize(device)
            module.weight = param
            if module.bias is not None:
                module.bias = torch.nn.Parameter(module.bias.to(quantization_config.bnb_4bit_compute_dtype),
                                                 requires_grad=False)
    model.is_loaded_in_4bit = True
    model.hf_quantizer = quantizer
    model.quantization_method = "bitsandbytes"


@contextlib.contextmanager
def meta_from_pretrained(values: dict[str, Any], layers: int | None, device: str = "meta") -> Iterator[list[str]]:
    """Within the block, AutoModelForCausalLM.from_pretrained builds the config's model on the meta device.

    `device="cpu"` builds real (randomly initialised) tensors instead: the tests run the same step for real.
    Yields a list that collects notes (e.g. flash attention simulated through its kernel interface).
    """
    import torch
    from transformers import AutoModelForCausalLM

    notes: list[str] = []
    config = hf_config(values, layers)

    def fake_from_pretrained(_source: Any, *args: Any, **kwargs: Any):
        attn = kwargs.get("attn_implementation") or "sdpa"
        if attn == "flash_attention_2":
            # flash-attn is a CUDA package: the model is built with SDPA, whose kernel the simulation routes
            # to a flash kernel (saves the output and the logsumexp, no s x s matrix) as flash-attn does.
            notes.append("flash attention simulated through SDPA routed to a flash kernel")
            attn = "sdpa"
        dtype = kwargs.get("dtype") or torch.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
        qc = kwargs.get("quantization_config")
        if qc is not None:
            _quantize_on_meta(model, qc, device)
        return model

    original = AutoModelForCausalLM.__dict__["from_pretrained"]
    AutoModelForCausalLM.from_pretrained = staticmethod(fake_from_pretrained)
    try:
        yield notes
    finally:
        AutoModelForCausalLM.from_pretrained = original


def build_model(spec: JobSpec, values: dict[str, Any], layers: int | None, fsdp: bool, device: str = "meta"):
    """(causal LM, loss module, precision, notes) exactly as the trainer builds them on a bf16 CUDA GPU."""
    from train.model import load_model
    from train.precision import resolve_precision
    from train.recipe import _loss_module

    precision = resolve_precision(spec, "cuda", True)
    with meta_from_pretrained(values, layers, device) as notes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lm = load_model(spec, "simulated", precision, "cuda", fsdp=fsdp)
    loss_model = _loss_module(lm, spec)
    return lm, loss_model, precision, notes
