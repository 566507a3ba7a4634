"""Load the tokenizer and model a job names, set up for its method (QLoRA, LoRA or full fine-tuning).

`spec.model` is the built-in `smoke-llama`, a local model folder, or a hub id (from_pretrained; the
hub cache is used offline, and a model that is neither cached nor reachable is a SpecError).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from train import smoke
from train.precision import Precision
from train.spec import JobSpec, SpecError

ATTN_IMPLEMENTATION = {"sdpa": "sdpa", "flash": "flash_attention_2", "eager": "eager"}


@contextlib.contextmanager
def model_source(spec: JobSpec) -> Iterator[str]:
    """A path or hub id that from_pretrained can read; checks the model exists before anything is written."""
    if smoke.is_smoke_model(spec.model):
        with smoke.smoke_model_folder() as path:
            yield path
        return
    if os.path.isdir(spec.model):
        if not os.path.exists(os.path.join(spec.model, "config.json")):
            raise SpecError("model", f"{spec.model} has no config.json", "give a folder saved with save_pretrained")
        yield spec.model
        return
    if spec.model.endswith(".json") or spec.model.startswith((".", "/", "~")):
        raise SpecError("model", f"{spec.model} is not a model folder", "give a folder with config.json and weights, or a hub id")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(spec.model)
    except Exception as exc:  # OSError offline / unknown repo, ValueError for odd ids
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        fix = (f"download it first (huggingface-cli download {spec.model}) or unset HF_HUB_OFFLINE, or give a local folder"
               if offline else "check the id (and HF_TOKEN for gated models), or give a local folder or smoke-llama")
        where = "in the local hub cache (offline)" if offline else "on the hub"
        raise SpecError("model", f"cannot find {spec.model!r} {where} ({type(exc).__name__})", fix) from None
    yield spec.model


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _dtype(name: str):
    import torch

    return getattr(torch, name)


def load_model(spec: JobSpec, source: str, precision: Precision, device: str, fsdp: bool = False):
    """The causal LM ready to train: quantized/adapted per spec.method, checkpointing per spec."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if spec.attention == "flash" and not device.startswith("cuda"):
        raise SpecError("attention", "flash attention needs a CUDA GPU", "use sdpa on this machine")
    kwargs: dict = {"dtype": _dtype(precision.load_dtype), "attn_implementation": ATTN_IMPLEMENTATION[spec.attention]}
    if not fsdp:
        kwargs["device_map"] = {"": device}
    if fsdp and device == "cpu":
        kwargs["device_map"] = {"": "cpu"}  # every rank holds the full model until FSDP shards it
    if spec.method == "qlora":
        compute = _dtype(precision.compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=spec.double_quant,
            bnb_4bit_compute_dtype=compute,
            # FSDP shards flat parameters of one dtype: store the packed 4-bit bytes as the compute dtype.
            bnb_4bit_quant_storage=compute if fsdp else torch.uint8,
        )
        if fsdp:
            kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ImportError as exc:  # flash_attn not installed
        raise SpecError("attention", f"{spec.attention} is not available here ({exc})", "use sdpa") from None
    model.config.use_cache = False
    gc_kwargs = {"use_reentrant": False}
    if spec.method == "qlora" and fsdp:
        # FSDP flattens each wrapped unit into one tensor of one dtype. prepare_model_for_kbit_training would
        # upcast the norms to fp32 beside the 4-bit weights stored as bf16; keep the base in one dtype instead
        # (as FSDP-QLoRA by Answer.AI and the PEFT FSDP-QLoRA guide do) and let the fp32 LoRA weights form
        # their own FSDP units (recipe._wrap).
        if spec.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.enable_input_require_grads()
    elif spec.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    if spec.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        if spec.method == "lora":
            for p in model.parameters():
                p.requires_grad_(False)
        config = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                            target_modules=spec.lora_targets, bias="none", task_type="CAUSAL_LM",
                            modules_to_save=list(spec.modules_to_save) or None)
        try:
            model = get_peft_model(model, config)
        except ValueError as exc:  # target modules not found
            raise SpecError("lora_targets", str(exc).splitlines()[0], "use all-linear or the model's module names") from None
        if smoke.is_smoke_model(spec.model):
            model.peft_config["default"].base_model_name_or_path = smoke.SMOKE_MODEL_ID
    return model


# A token whose input-embedding row is below this fraction of the median row norm was never trained:
# Llama-3 base models ship their chat/reserved tokens with (near-)zero rows (Unsloth, "Llama-3 untrained
# tokens", 2024-04; the rows' max |w| is ~1e-30), and a LoRA adapter cannot move them.
UNTRAINED_ROW_FRACTION = 0.01


def untrained_token_ids(embedding_weight, token_ids: list[int]) -> list[int]:
    """The ids among `token_ids` whose embedding rows look untrained (see UNTRAINED_ROW_FRACTION)."""
    import torch

    if not token_ids:
        return []
    w = embedding_weight.detach()
    if w.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return []
    norms = w.float().norm(dim=-1)
    floor = UNTRAINED_ROW_FRACTION * float(norms.median())
    return [t for t in token_ids if t < norms.numel() and float(norms[t]) <= floor]


def check_new_tokens(model, tokenizer, token_ids: list[int], spec: JobSpec) -> None:
    """LoRA cannot train embedding rows: special tokens the data uses but the base never trained need
    modules_to_save (the embeddings and the LM head trained in full), else a SpecError naming the fix."""
    if spec.method == "full":
        return
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb = base.get_input_embeddings()
    weight = getattr(emb, "original_module", emb).weight if hasattr(emb, "original_module") else emb.weight
    bad = untrained_token_ids(weight, token_ids)
    if not bad:
        return
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in base.named_modules()}
    emb_name = names.get(id(emb), "embed_tokens")
    head = base.get_output_embeddings()
    head_name = names.get(id(head), "lm_head") if head is not None else None
    needed = [n for n in (emb_name, head_name) if n]
    if all(any(n == m or m.endswith("." + n) or n.endswith(m) for m in spec.modules_to_save) for n in needed):
        return
    shown = ", ".join(repr(tokenizer.convert_ids_to_tokens(t)) for t in bad[:4])
    raise SpecError("modules_to_save", f"the data uses tokens the base model never trained ({shown}); "
                    "LoRA cannot learn their embeddings",
                    f"set modules_to_save: [{', '.join(needed)}], or use the instruct model or a template "
                    "without those tokens (data.chat_template)")


def load_base_for_merge(spec: JobSpec, source: str, dtype_name: str):
    """The unquantized base model (on CPU) that a trained adapter is merged into."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=_dtype(dtype_name), device_map={"": "cpu"})


def trainable_state_dict(model) -> dict:
    """Parameters that train (LoRA weights, or everything for full fine-tuning), on CPU and contiguous."""
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state_dict(model, state: dict) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing[:3]}, unexpected {unknown[:3]}")
    import torch

    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
