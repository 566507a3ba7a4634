"""Which tool a config file belongs to, from its keys.

Each format lists keys only it writes (its module's MARKERS); the format with the most of them present wins.
torchtune configs are recognised by `_component_` entries. A file with no marker whose keys are job-spec fields
is a gpuplan job spec. Anything else is one line naming what was recognised and what wasn't.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from train.spec import JobSpec, SpecError

FORMATS = ("gpuplan", "axolotl", "llama-factory", "trl", "torchtune")
SPEC_FIELDS = {f.name for f in fields(JobSpec)}


_ANCHOR = {"axolotl": "base_model", "llama-factory": "model_name_or_path", "trl": "model_name_or_path",
           "torchtune": "_component_"}


def _modules() -> dict[str, Any]:
    from planner.imports import axolotl, llama_factory, torchtune, trl

    return {"axolotl": axolotl, "llama-factory": llama_factory, "trl": trl, "torchtune": torchtune}


def _has_component(node: Any) -> bool:
    if isinstance(node, Mapping):
        return "_component_" in node or any(_has_component(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_component(v) for v in node)
    return False


def detect_format(raw: Any, path: str = "") -> tuple[str, list[str]]:
    """(format, the keys that identified it)."""
    where = f"{path}: " if path else ""
    if not isinstance(raw, Mapping) or not raw:
        kind = "empty" if not raw else type(raw).__name__
        raise SpecError("config", f"{where}expected a mapping of settings, got {kind}",
                        "give a gpuplan job spec or an axolotl, LLaMA-Factory, TRL or torchtune config")
    keys = [str(k) for k in raw]
    spec_keys = [k for k in keys if k.replace("-", "_") in SPEC_FIELDS or k.startswith("data")]
    scores: dict[str, list[str]] = {}
    for fmt, mod in _modules().items():
        # keys that are also job-spec fields (learning_rate, seed, packing ...) mark no foreign format
        hits = [k for k in keys if k in mod.MARKERS and k not in SPEC_FIELDS]
        if fmt == "torchtune" and _has_component(raw):
            hits = ["_component_"] + hits
        if hits:
            scores[fmt] = hits
    if scores:
        def rank(fmt: str) -> tuple[int, int]:
            bonus = 0
            if fmt == "torchtune" and "_component_" in scores[fmt]:
                bonus = 1000  # no other tool writes _component_ entries
            elif fmt == "llama-factory":
                bonus = 100  # its own keys beat the HF TrainingArguments keys it shares with TRL configs
            return (-(len(scores[fmt]) + bonus), FORMATS.index(fmt))

        best = min(scores, key=rank)
        # A job spec with a stray foreign key (`sequence_len` for seq_len) stays a job spec, so its error can
        # suggest the right field; a foreign config names its model in its own key (or has _component_ entries).
        if _ANCHOR[best] not in keys + scores[best] and len(spec_keys) >= len(scores[best]):
            return "gpuplan", spec_keys
        return best, scores[best]
    if spec_keys and len(spec_keys) * 2 >= len(keys):
        return "gpuplan", spec_keys
    from planner.imports.common import clean

    shown = clean(", ".join(keys[:6]) + (" ..." if len(keys) > 6 else ""))
    raise SpecError("config", f"{where}unrecognised format: none of its keys ({shown}) mark a gpuplan job spec or "
                              "an axolotl, LLaMA-Factory, TRL or torchtune config",
                    "check the file, or force a format with --config-format")
