"""Which dtypes a job loads, computes and autocasts in, given the spec and the device it runs on."""
from __future__ import annotations

from dataclasses import dataclass

from train.spec import JobSpec


@dataclass(frozen=True)
class Precision:
    load_dtype: str  # dtype of the (non-quantized) weights as loaded: "float32" | "bfloat16" | "float16"
    compute_dtype: str  # QLoRA: the dtype Linear4bit dequantizes to and multiplies in
    autocast_dtype: str | None  # torch.autocast dtype around forward, or None
    grad_scaler: bool  # fp16 needs a loss scaler; bf16 does not


def resolve_precision(spec: JobSpec, device_type: str, bf16_supported: bool) -> Precision:
    """Map spec.precision onto what the device can do.

    GPUs without bf16 (pre-Ampere: V100, T4) fall back to fp16 with a loss scaler. On the CPU,
    bitsandbytes >= 0.50 runs NF4 matmuls in bf16, fp16 and fp32 (checked: Linear4bit forward and
    backward in all three); QLoRA computes in bf16 there and the rest of the model stays fp32
    (no autocast: CPU autocast slows small models down more than it saves).
    """
    sixteen = "bfloat16" if (device_type == "cpu" or bf16_supported) else "float16"
    if spec.precision == "fp16-mixed" and device_type == "cuda":
        sixteen = "float16"
    if spec.method == "qlora":
        # prepare_model_for_kbit_training upcasts norms/embeddings to fp32; the 4-bit matmuls use compute_dtype.
        autocast = sixteen if device_type == "cuda" else None
        return Precision(sixteen, sixteen, autocast, autocast == "float16")
    if spec.precision == "fp32":
        return Precision("float32", "float32", None, False)
    if spec.precision == "bf16" and sixteen == "bfloat16":
        return Precision("bfloat16", "bfloat16", None, False)  # pure bf16 (torchtune/litgpt "bf16-true")
    if device_type == "cpu":
        return Precision("float32", "float32", "bfloat16", False)
    return Precision("float32", sixteen, sixteen, sixteen == "float16")
