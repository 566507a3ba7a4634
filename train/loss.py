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

# The planner models a chunked loss the same way (planner.memory.Calibration.loss_chunks).
LOSS_CHUNKS = 8


def _chunk_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module, softcap: float | None) -> torch.Tensor:
    logits = head(hidden).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, labels, reduction="sum")


class CausalLMLoss(nn.Module):
    """Wraps a causal LM (plain or PEFT) so that forward(batch) -> (loss_sum, n_label_tokens).

    Holds the decoder stack and the LM head as its only submodules: this is the module DDP/FSDP wrap.
    """

    def __init__(self, lm: nn.Module, chunks: int = 1) -> None:
        super().__init__()
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.softcap = getattr(base.config, "final_logit_softcapping", None)
        self.chunks = max(1, chunks)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=False).last_hidden_state
        flat_labels = labels.reshape(-1)
        keep = flat_labels != IGNORE
        h = hidden.reshape(-1, hidden.shape[-1])[keep]
        y = flat_labels[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        if self.chunks == 1:
            if y.numel():
                total = total + _chunk_loss(h, y, self.head, self.softcap)
        else:
            size = max(1, -(-y.numel() // self.chunks))
            for i in range(0, y.numel(), size):
                total = total + checkpoint(_chunk_loss, h[i: i + size], y[i: i + size], self.head, self.softcap,
                                           use_reentrant=False)
        if y.numel() == 0:  # keep every parameter in the graph so DDP's reducer is not left waiting
            total = total + 0.0 * hidden.sum()
        return total, keep.sum()
