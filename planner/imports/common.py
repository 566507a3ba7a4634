"""Shared machinery of the config importers: a `Mapper` that reads a foreign config key by key (so every key
ends up mapped, ignored with a reason, or reported), value coercion whose errors name the config's own key,
and the vocabularies several tools share (HF optimizer names, attention implementations, DeepSpeed/FSDP)."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping

from planner.imports.report import Ignored, ImportReport, Mapped, Missing
from train.spec import SpecError

_MISSING = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str) -> str:
    """User text made safe for a one-line message: control characters (newlines ...) shown escaped."""
    return _CONTROL.sub(lambda mo: repr(mo.group())[1:-1], str(text))


class Mapper:
    """Reads one foreign config. `take` marks a key as read; `finish` reports every key never read."""

    def __init__(self, raw: Mapping[str, Any], fmt: str, label: str, *, given: Mapping[str, Any] | None = None,
                 base_dir: str = ".") -> None:
        self.raw = raw
        self.given = dict(given or {})  # the user's flag overrides: they may supply what the config lacks
        self.base_dir = base_dir  # where files the config names (a DeepSpeed JSON) are looked up
        self.fmt = fmt
        self.label = label  # "axolotl", "LLaMA-Factory", ... for messages
        self.fields: dict[str, Any] = {}
        self.sources: dict[str, str] = {}  # spec field -> config key it came from
        self.report = ImportReport(format=fmt)
        self._read: set[str] = set()
        self._whole: set[str] = set()

    # -- reading -------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return self._lookup(key) is not _MISSING

    def _lookup(self, key: str) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def take(self, key: str, default: Any = None) -> Any:
        """The value at a (dotted) key, marked as read; `default` when absent or null."""
        self._read.add(key)
        value = self._lookup(key)
        return default if value is _MISSING or value is None else value

    def mark(self, key: str) -> None:
        self._read.add(key)

    def take_whole(self, key: str, default: Any = None) -> Any:
        """Like `take`, for a section read as one value (a DeepSpeed or FSDP config): its keys are accounted for."""
        self._whole.add(key)
        return self.take(key, default)

    # -- typed reading (errors name the config key) ----------------------------------------------
    def error(self, key: str, problem: str, fix: str) -> SpecError:
        return SpecError(clean(f"{key} ({self.label})"), clean(problem), clean(fix))

    def int_(self, key: str, default: Any = None) -> int | None:
        v = self.take(key)
        if v is None:
            return default
        if isinstance(v, bool):
            raise self.error(key, f"expected a whole number, got {v!r}", "write a number such as 2048")
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                f = float(v.replace("_", ""))
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        if isinstance(v, int):
            return v
        raise self.error(key, f"expected a whole number, got {v!r}", "write a number such as 2048")

    def float_(self, key: str, default: Any = None) -> float | None:
        v = self.take(key)
        if v is None:
            return default
        if isinstance(v, bool) or isinstance(v, (dict, list)):
            raise self.error(key, f"expected a number, got {v!r}", "write a number such as 1.0")
        try:
            return float(v)
        except (TypeError, ValueError):
            raise self.error(key, f"expected a number, got {v!r}", "write a number such as 1.0") from None

    def bool_(self, key: str, default: Any = None) -> bool | None:
        v = self.take(key)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return v.strip().lower() in ("true", "yes", "on", "1")
        raise self.error(key, f"expected true or false, got {v!r}", "write true or false")

    def str_(self, key: str, default: Any = None) -> str | None:
        v = self.take(key)
        if v is None:
            return default
        if isinstance(v, (dict, list)) or isinstance(v, bool):
            raise self.error(key, f"expected a name, got {v!r}", "write a single name")
        return str(v)

    def names(self, key: str) -> list[str] | str | None:
        """A list of module names, or one string (possibly comma separated)."""
        v = self.take(key)
        if v is None:
            return None
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(",") if p.strip()]
            if not parts:
                raise self.error(key, "is empty", "list module names, e.g. [q_proj, v_proj], or all-linear")
            return parts
        if isinstance(v, (list, tuple)) and v and all(isinstance(p, str) and p.strip() for p in v):
            return [p.strip() for p in v]
        raise self.error(key, f"expected a list of module names, got {v!r}", "e.g. [q_proj, v_proj]")

    # -- recording -----------------------------------------------------------------------------
    def set(self, field: str, value: Any, key: str, note: str = "") -> None:
        """Set a job-spec field from config key `key` (or "(default)" for the tool's default)."""
        if value is None:
            return
        self.fields[field] = value
        self.sources[field] = key
        self.report.mapped = [m for m in self.report.mapped if m.field != field]
        self.report.mapped.append(Mapped(key, field, value, note))

    def default(self, field: str, value: Any, why: str) -> None:
        """The tool's own default for a setting the config leaves out (the tool would run with it)."""
        if field not in self.fields:
            self.set(field, value, "(default)", why)

    def ignore(self, key: str, reason: str) -> None:
        self._read.add(key)
        if self.has(key) and not any(i.key == key for i in self.report.ignored):
            self.report.ignored.append(Ignored(key, reason))

    def note_ignored(self, key: str, reason: str) -> None:
        """Record an ignored part that is not a plain key (a list item, a plugin)."""
        self.report.ignored.append(Ignored(key, reason))

    def missing(self, field: str, fix: str) -> None:
        self.report.missing.append(Missing(field, fix))

    def finish(self, reasons: Callable[[str], str | None]) -> None:
        """Report every key (nested mappings key by key) not read yet as ignored, with `reasons(key)` or a
        generic reason. Nothing is dropped silently."""

        def walk(node: Mapping[str, Any], prefix: str) -> None:
            named = {m.key for m in self.report.mapped} | {i.key for i in self.report.ignored}
            for k, v in node.items():
                key = f"{prefix}{k}"
                if key in named or key in self._whole:
                    continue
                if isinstance(v, Mapping) and v:
                    walk(v, key + ".")  # a section: each of its keys is accounted for
                    continue
                if key in self._read:
                    continue
                if v is None or v == "" or v == [] or v == {}:
                    reason = "empty: the tool's default applies"
                else:
                    reason = reasons(key) or (f"not a setting gpuplan's {self.label} importer knows; check it does "
                                              "not change memory, speed or the amount of data")
                self.report.ignored.append(Ignored(key, reason))

        walk(self.raw, "")
        named = {m.key for m in self.report.mapped} | {i.key for i in self.report.ignored}
        for key in sorted(self._read):
            value = self._lookup(key)
            if key not in named and value is not _MISSING and value not in (None, "", [], {}) and not any(
                    n.startswith(key + ".") or n.startswith(key + "[") for n in named):
                self.report.checked.append(key)


# ------------------------------------------------------------------------------------------------
# Vocabularies shared by several tools
# ------------------------------------------------------------------------------------------------
def optimizer(name: str) -> tuple[str, str]:
    """A tool's optimizer name (HF `optim` values, torch/bitsandbytes class paths) -> (spec optimizer, note).

    Exact for AdamW/Adam in 32-bit or 8-bit (paged or not) and SGD. Other optimizers (Adafactor, Lion, GaLore,
    LOMO, schedule-free, Muon ...) are sized as the AdamW of the same state width: an upper bound, since none
    keeps more state than AdamW's two moments (HF transformers OptimizerNames, bitsandbytes.optim, 2025).
    """
    raw = str(name).strip()
    n = raw.lower().replace("-", "_").rsplit(".", 1)[-1]
    eight = "8bit" in n or "8_bit" in n
    paged = "paged" in n
    if n in ("sgd",):
        return "sgd", ""
    if re.fullmatch(r"(paged_)?adam(w)?(_?8_?bit)?(_torch(_fused|_xla|_npu_fused)?|_hf|_apex_fused|_anyprecision"
                    r"|_bnb(_8bit)?|_torch_4bit|_torch_8bit)?", n):
        if eight or "_4bit" in n:
            return ("paged-adamw-8bit" if paged else "adamw-8bit"), ("4-bit AdamW states sized as 8-bit"
                                                                     if "_4bit" in n else "")
        return "adamw", ("paged 32-bit AdamW: the same states as AdamW" if paged else "")
    if eight:
        return ("paged-adamw-8bit" if paged else "adamw-8bit"), f"'{raw}' sized as 8-bit AdamW (upper bound)"
    return "adamw", f"'{raw}' sized as AdamW (an upper bound: it keeps no more state than AdamW)"


def attention(name: str) -> tuple[str, str] | None:
    """transformers attn_implementation values -> (spec attention, note); None for an unknown value."""
    n = str(name).strip().lower()
    if n.startswith("flash_attention") or n in ("fa2", "fa3", "flash", "flash_attn", "kernels-community/flash-attn",
                                                "kernels-community/vllm-flash-attn3"):
        return "flash", ""
    if n in ("sdpa", "auto"):
        return "sdpa", "" if n == "sdpa" else "auto: flash-attn if installed, else sdpa; sized as sdpa"
    if n in ("eager", "disabled"):
        return "eager", ""
    if n.startswith("flex") or "xformers" in n or n.startswith("paged"):
        return "sdpa", f"'{name}' is memory-efficient like sdpa; sized as sdpa"
    return None


def deepspeed_parallel(value: Any, base_dir: str) -> tuple[str, str]:
    """A DeepSpeed config (a dict, or a JSON path, read when it exists; else its file name) -> (parallel, note).

    ZeRO-3 shards parameters, gradients and optimizer states like FSDP FULL_SHARD -> zero3; with
    offload_param/offload_optimizer to CPU -> fsdp-offload. ZeRO-1/2 shard only optimizer states (and
    gradients): sized as ddp, an upper bound on memory (DeepSpeed ZeRO docs, 2025).
    """
    cfg: Any = value
    label = "the DeepSpeed config"
    if isinstance(value, str):
        label = os.path.basename(value)
        path = value if os.path.isabs(value) else os.path.join(base_dir, value)
        cfg = None
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    cfg = json.load(fh)
            except (OSError, ValueError, UnicodeDecodeError):
                cfg = None
    if isinstance(cfg, Mapping):
        zero = cfg.get("zero_optimization") or {}
        stage = zero.get("stage", 0) if isinstance(zero, Mapping) else 0
        def _cpu(k: str) -> bool:
            sub = zero.get(k) if isinstance(zero, Mapping) else None
            return isinstance(sub, Mapping) and str(sub.get("device", "none")).lower() in ("cpu", "nvme")
        offload = _cpu("offload_param") or _cpu("offload_optimizer")
    else:
        name = label.lower()
        m = re.search(r"(?:zero|z)[_-]?(\d)", name)
        if not m:
            raise SpecError("deepspeed", f"cannot tell the ZeRO stage of {clean(label)!r} (file not found here)",
                            "put the DeepSpeed JSON beside the config, or name it zero1/zero2/zero3[_offload]")
        stage = int(m.group(1))
        offload = "offload" in name
    if stage == 3:
        return ("fsdp-offload", f"ZeRO-3 with CPU offload ({label})") if offload else ("zero3", f"ZeRO-3 ({label})")
    if offload:
        return "fsdp-offload", f"ZeRO-{stage} with CPU offload ({label}): sized as sharded + offloaded"
    return "ddp", f"ZeRO-{stage} ({label}) shards only optimizer states/gradients: sized as ddp (upper bound)"


def fsdp_parallel(options: Any, config: Any, *, config_enables: bool = False) -> tuple[str, str] | None:
    """HF/accelerate FSDP settings (`fsdp: "full_shard auto_wrap offload"` or a list, plus `fsdp_config`)
    -> (parallel, note); None when FSDP is off. In transformers only the `fsdp` options turn FSDP on
    (`fsdp_config` alone holds defaults); in axolotl a non-empty `fsdp_config` does (config_enables)."""
    if options in (None, "", [], False):
        words: list[str] = []
    elif isinstance(options, str):
        words = options.lower().split()
    elif isinstance(options, (list, tuple)):
        words = [str(w).lower() for w in options]
    elif options is True:
        words = ["full_shard"]
    else:
        raise SpecError("fsdp", f"expected FSDP options such as 'full_shard auto_wrap', got {options!r}",
                        "write e.g. fsdp: full_shard auto_wrap")
    cfg = config if isinstance(config, Mapping) else {}
    if not words and not (config_enables and cfg):
        return None
    offload = "offload" in words or bool(cfg.get("offload_params") or cfg.get("fsdp_offload_params")
                                         or cfg.get("cpu_offload"))
    strategy = str(cfg.get("sharding_strategy") or cfg.get("fsdp_sharding_strategy") or "").lower()
    if offload:
        return "fsdp-offload", "FSDP with CPU offload"
    if "shard_grad_op" in words or strategy in ("shard_grad_op", "2"):
        return "ddp", "FSDP SHARD_GRAD_OP keeps whole parameters: sized as ddp (upper bound)"
    if "no_shard" in words or strategy in ("no_shard", "3"):
        return "ddp", "FSDP NO_SHARD is data parallel"
    return "fsdp", "FSDP full shard"


# The comment line `gpuplan export` writes so the job settings a tool's config cannot hold (dataset size, GPU
# count, a precision the tool has no switch for) survive a round trip: "# gpuplan: dataset_tokens=20000000 gpus=2".
# The tool itself never reads it; the importer applies it over the mapped settings.
_HINT = re.compile(r"^\s*#\s*gpuplan:\s*(.*)$")


def read_hints(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _HINT.match(line)
        if not m:
            continue
        for item in m.group(1).split():
            k, sep, v = item.partition("=")
            if sep and k and v:
                out[k] = v
    return out


def hint_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def hint_line(fields: Mapping[str, Any]) -> str:
    items = [f"{k}={hint_value(v)}" for k, v in fields.items()
             if v not in (None, "") and not any(ch.isspace() for ch in hint_value(v))]
    return ("# gpuplan: " + " ".join(items)) if items else ""
