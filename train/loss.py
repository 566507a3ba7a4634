"""Next-token loss computed on the completion tokens only, optionally in chunks (spec.chunked_loss).

The hidden states of positions with a label are gathered first (with completion-only loss this skips the
prompt positions). With `chunked_loss`, they go through the LM head in LOSS_CHUNKS chunks under non-reentrant
checkpointing, so only one chunk's fp32 logits is alive at once instead of batch x seq x vocab (2 GiB for one
8k-token row at a 128k vocabulary); without it, in one piece, as a plain Hugging Face loss would.
The module returns the *summed* loss and the label count so the trainer can normalise over grad
accumulation and data-parallel ranks exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from train.data import IGNORE

# The planner models a chunked loss the same way (planner.estimator.memory.Calibration.loss_chunks).
LOSS_CHUNKS = 8


def _chunk_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module, softcap: float | None,
                scale: float = 1.0) -> torch.Tensor:
    logits = head(hidden).float()
    if scale != 1.0:
        logits = logits * scale
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, labels, reduction="sum")


class CausalLMLoss(nn.Module):
    """Wraps a causal LM (plain or PEFT) so that forward(batch) -> (loss_sum, n_label_tokens).

    Holds the decoder stack and the LM head as its only submodules: this is the module DDP/FSDP wrap.
    It computes what the model's own ForCausalLM.forward would: the logit scaling some architectures apply
    (Cohere `logit_scale` multiplies, Granite `logits_scaling` divides), Gemma's final soft-capping, and, when
    the config asks for router logits (`output_router_logits`, as Mixtral/Qwen-MoE training configs do), the
    MoE load-balancing loss times `router_aux_loss_coef`, with the model's own load_balancing_loss_func.
    """

    def __init__(self, lm: nn.Module, chunks: int = 1) -> None:
        super().__init__()
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        config = base.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.scale = float(getattr(config, "logit_scale", None) or 1.0)
        if getattr(config, "logits_scaling", None):
            self.scale /= float(config.logits_scaling)
        self.chunks = max(1, chunks)
        self.router_coef = 0.0
        self._balance = None
        if getattr(config, "output_router_logits", False) and getattr(config, "router_aux_loss_coef", 0):
            import sys

            self._balance = getattr(sys.modules[type(base).__module__], "load_balancing_loss_func", None)
            self.router_coef = float(config.router_aux_loss_coef)
            self.num_experts = getattr(base, "num_experts", None) or getattr(config, "num_local_experts", None)
            self.experts_per_token = getattr(base, "num_experts_per_tok", None) or config.num_experts_per_tok

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        extra = {"output_router_logits": True} if self._balance is not None else {}
        outputs = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               use_cache=False, **extra)
        hidden = outputs.last_hidden_state
        flat_labels = labels.reshape(-1)
        keep = flat_labels != IGNORE
        h = hidden.reshape(-1, hidden.shape[-1])[keep]
        y = flat_labels[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        if self.chunks == 1:
            if y.numel():
                total = total + _chunk_loss(h, y, self.head, self.softcap, self.scale)
        else:
            size = max(1, -(-y.numel() // self.chunks))
            for i in range(0, y.numel(), size):
                total = total + checkpoint(_chunk_loss, h[i: i + size], y[i: i + size], self.head, self.softcap,
                                           self.scale, use_reentrant=False)
        if y.numel() == 0:  # keep every parameter in the graph so DDP's reducer is not left waiting
            total = total + 0.0 * hidden.sum()
        if self._balance is not None and getattr(outputs, "router_logits", None):
            aux = self._balance(outputs.router_logits, self.num_experts, self.experts_per_token, attention_mask)
            # the trainer divides the summed loss by the label count: add coef x aux per label token
            total = total + self.router_coef * aux.float() * keep.sum()
        return total, keep.sum()
