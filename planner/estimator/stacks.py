"""Training stacks by mechanism: the few things that change a step's memory between the bundled trainer and
the common others, each with where it comes from.

A job spec's `stack` (train.spec.STACKS) selects one `Mechanisms`; the memory model reads only these fields,
never the stack's name, so a stack differs from another by exactly the bytes of the mechanisms that differ.

Mechanisms
- loss_bytes_per_logit: bytes per logit element (batch x seq x vocab) live at the loss's backward peak.
  Logits upcast to fp32 before cross-entropy (our train/loss.py `head(hidden).float()`; transformers 5's
  ForCausalLMLoss `logits.float()`): log-softmax saves its fp32 output (4 B); at backward's first op of the
  loss (`_log_softmax_backward_data`) the fp32 grad from nll_loss's backward (4 B) and the fp32 grad_input
  (4 B) are live with it: 12 B (traced on meta tensors, issue 9). transformers 4.3x-4.4x (2024) upcast inside
  the model's forward and took a `.contiguous()` shifted copy (modeling_llama.py, `logits = logits.float()`,
  `shift_logits = logits[..., :-1, :].contiguous()`): the fp32 logits held by the output plus the shifted
  copy's slice-backward add 4 B: 16 B. torchtune's 2024 recipes (v0.1-0.2) did the same in fp32:
  the model returned `self.output(h).float()` and the recipe shifted it with
  `logits[..., :-1, :].contiguous()` and kept `logits` alive while `loss.backward()` ran (`del logits`
  before backward came with the chunked loss, v0.3, 2024-09): 16 B. litgpt's `chunked_cross_entropy` (litgpt/utils.py) runs
  cross-entropy on the bf16 logits in 128-position chunks with no upcast: bf16 logits (2) + bf16 log-softmax
  (2) + bf16 grad (2): 6 B.
- kbit_prep_fp32: PEFT's `prepare_model_for_kbit_training` casts every non-quantized fp16/bf16 parameter
  (embeddings, lm_head, norms) to fp32 (peft/utils/other.py). Our trainer, HF Trainer/TRL, axolotl and
  LLaMA-Factory call it for QLoRA. torchtune (torchao NF4, whole model bf16) and litgpt (bitsandbytes
  plugin, bf16-true) do not.
- adapter_bytes: bytes per LoRA parameter. PEFT >= 0.12 (2024-07) creates adapters in fp32 when the base is
  16-bit (`autocast_adapter_dtype=True`, peft/tuners/tuners_utils.py); torchtune and litgpt keep the whole
  model, adapters included, in bf16.
- autocast: the forward runs under torch.autocast (QLoRA on CUDA in our trainer, HF Trainer `bf16=True`).
  Autocast caches casts only of leaf tensors that require grad, so the frozen fp32 lm_head gets an uncached
  bf16 copy per call, which the matmul saves for backward (V x h x 2 B); PEFT's fp32 adapters read a bf16
  cast of their input.
- fp32 residual: not a flag; it follows from the dtypes. When the embedding weight is fp32 (k-bit prep or
  fp32 master weights) the embedding output is fp32 and `residual + attn_out` promotes to fp32 for the whole
  stream, so each checkpointed layer input costs 4 B per element, not 2.
- zero3_buckets: DeepSpeed ZeRO-3 keeps a reduce bucket and a prefetch bucket of 16-bit values; HF's
  "auto" config sizes them reduce_bucket_size = h^2 and stage3_prefetch_bucket_size = 0.9 h^2
  (transformers/integrations/deepspeed.py); with bf16 it keeps fp32 master weights in the optimizer
  (DeepSpeed docs, "ZeRO-3 Offload": 2 + 2 + 12 bytes per parameter, sharded).
- fused_adamw: torch's fused AdamW (our trainer on CUDA, train/optim.py; transformers 5's default optim
  "adamw_torch_fused"; torchtune's full fine-tune configs `fused: True`) updates in place; the foreach
  implementation (transformers 4.4x "adamw_torch", litgpt) allocates param-size temporaries (sqrt of the
  second moment, the update) for the whole parameter list: 2 x the state dtype per parameter.
- sdpa_gqa_native: transformers >= 4.48's sdpa_attention_forward passes grouped k/v to SDPA with
  enable_gqa=True when no attention mask is built (`use_gqa_in_sdpa`: mask None, head_dim <= 256; a full
  unpadded row of one sequence, the worst case the planner sizes), so autograd saves k and v at their
  kv-head width; transformers 4.4x (`repeat_kv` before SDPA), torchtune (k/v expanded and flattened) and
  litgpt (k/v expanded to all heads) save them repeated to every query head. Flash-attention 2 and eager do
  not depend on the stack: FA2 reads grouped heads in place, eager always repeats (`repeat_kv`).
- fsdp_root_embeddings: FSDP (1 and 2) does not reshard the root unit after forward (backward needs it at
  once: torch.distributed.fsdp `_post_forward_reshard` frees only non-root handles; fully_shard's root keeps
  reshard_after_forward=False), so every rank holds the whole root from forward to the end of backward. Our
  trainer, accelerate/HF Trainer and litgpt wrap only the decoder layers, so the root holds the embedding
  and the lm_head. torchtune's configs shard them as units of their own (`custom_sharded_layers:
  ['tok_embeddings', 'output']`, Llama 3 recipes 2024), resharded after use like any layer.
- fsdp_flat_fp32: FSDP1 under accelerate's `mixed_precision: bf16` keeps each wrapped module's parameters as
  one flat fp32 shard (torch.distributed.fsdp FlatParameter) and all-gathers a 16-bit copy (MixedPrecision
  param_dtype=bf16): a gathered layer costs 2 B per parameter and autocast has nothing left to cast. Our
  trainer does the same for full fine-tuning only (train/shard.py `wrap_fsdp`: FSDP1, use_orig_params,
  MixedPrecision(param_dtype=bf16/fp16, reduce_dtype=fp32)); a LoRA job's fp32 base is gathered in fp32 and
  autocast casts (and caches) its 16-bit copies.
"""
from __future__ import annotations

from dataclasses import dataclass

from train.spec import JobSpec


@dataclass(frozen=True)
class Mechanisms:
    name: str
    loss_bytes_per_logit: float
    kbit_prep_fp32: bool
    adapter_bytes: int
    autocast_qlora: bool  # QLoRA forward under torch.autocast (16-bit compute over fp32 non-quantized weights)
    zero3_buckets: bool
    fsdp_flat_fp32: bool
    fused_adamw: bool  # AdamW updates in one fused kernel (no temporaries) vs foreach (param-size temporaries)
    source: str
    sdpa_gqa_native: bool = True  # SDPA reads grouped k/v heads in place (enable_gqa) instead of repeating them
    softcap_fp32: bool = False  # a final logit soft-cap (Gemma 2) runs on the fp32 logits (our loss) not 16-bit
    fsdp_root_embeddings: bool = True  # FSDP's root unit holds the embedding and lm_head (kept unsharded)
    # the 16-bit gather of fsdp_flat_fp32 covers LoRA's frozen base too (accelerate applies its MixedPrecision
    # policy to every unit); our trainer applies MixedPrecision to full fine-tunes only (train/shard.py)
    fsdp_flat_fp32_lora: bool = True


_PEFT = "PEFT prepare_model_for_kbit_training + fp32 adapters (peft 0.12+, 2024-07)"

STACK_MECHANISMS: dict[str, Mechanisms] = {
    "gpuplan": Mechanisms("gpuplan", 12.0, True, 4, True, False, True, True,
                          "the bundled trainer (train/model.py, train/loss.py): " + _PEFT + ", fp32 loss upcast",
                          softcap_fp32=True, fsdp_flat_fp32_lora=False),
    "hf-trainer": Mechanisms("hf-trainer", 12.0, True, 4, True, True, True, True,
                             "transformers 5 Trainer: ForCausalLMLoss upcasts logits to fp32; " + _PEFT),
    "hf-trainer-2024": Mechanisms("hf-trainer-2024", 16.0, True, 4, True, True, True, False,
                                  "transformers 4.40-4.45 (2024): fp32 logits in the model output + shifted "
                                  "contiguous copy; " + _PEFT, sdpa_gqa_native=False),
    "trl": Mechanisms("trl", 12.0, True, 4, True, True, True, True,
                      "TRL SFTTrainer on transformers 5 Trainer; " + _PEFT),
    "axolotl": Mechanisms("axolotl", 12.0, True, 4, True, True, True, True,
                          "axolotl on HF Trainer (its fused/cut cross-entropy plugins off by default); " + _PEFT),
    "llama-factory": Mechanisms("llama-factory", 12.0, True, 4, True, True, True, True,
                                "LLaMA-Factory on HF Trainer; " + _PEFT),
    "torchtune": Mechanisms("torchtune", 12.0, False, 2, False, False, False, True,
                            "torchtune recipes: whole model bf16 (dtype: bf16), torchao NF4, no autocast; the "
                            "chunked loss is the spec's chunked_loss (CEWithChunkedOutputLoss, v0.3+)",
                            sdpa_gqa_native=False, fsdp_root_embeddings=False),
    "torchtune-2024": Mechanisms("torchtune-2024", 16.0, False, 2, False, False, False, False,
                                 "torchtune v0.1-0.2 recipes (2024-04..08): TransformerDecoder returns "
                                 "`output(h).float()`, the recipe keeps the shifted contiguous fp32 logits "
                                 "alive through backward (no chunked loss); torch.optim.AdamW without fused; "
                                 "FSDP1 wrapping decoder layers only (root holds embeddings and output)",
                                 sdpa_gqa_native=False),
    "litgpt": Mechanisms("litgpt", 6.0, False, 2, False, False, False, False,
                         "litgpt: bf16-true, bitsandbytes plugin without k-bit prep, chunked_cross_entropy on "
                         "bf16 logits", sdpa_gqa_native=False),
}


def mechanisms(spec: JobSpec) -> Mechanisms:
    """The mechanisms of the stack that runs `spec` (train.spec validates the name)."""
    return STACK_MECHANISMS.get(spec.stack, STACK_MECHANISMS["gpuplan"])
