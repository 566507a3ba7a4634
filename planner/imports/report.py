"""What an import did with each key of a foreign config: mapped onto a job-spec field, ignored (with the
reason), or missing (with the flag that supplies it). The plan document shows it under ``import``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Mapped:
    key: str  # the config's key, dotted for nested ones ("model.lora_rank"), or "(default)"
    field: str  # the job-spec field it sets
    value: Any  # the job-spec value
    note: str = ""  # how it was read, when not one-to-one

    def to_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "field": self.field, "value": self.value}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Ignored:
    key: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "reason": self.reason}


@dataclass
class Missing:
    field: str  # the job-spec field the plan would like
    fix: str  # how to give it (a flag)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "fix": self.fix}


@dataclass
class ImportReport:
    format: str  # axolotl | llama-factory | trl | torchtune
    path: str = ""
    detected_by: list[str] = field(default_factory=list)  # the keys that identified the format ("--config-format" when forced)
    stack: str = ""
    mapped: list[Mapped] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    # keys read that set no field because their value is what the plan assumes anyway (stage: sft, fp16: false)
    checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": self.path, "detected_by": list(self.detected_by), "stack": self.stack,
                "mapped": [m.to_dict() for m in self.mapped], "ignored": [i.to_dict() for i in self.ignored],
                "missing": [m.to_dict() for m in self.missing], "checked": list(self.checked)}

    def one_line(self) -> str:
        return summary_line(self.to_dict())


def summary_line(doc: dict[str, Any]) -> str:
    """The short line the table output shows for a plan document's `import` section."""
    ignored = doc.get("ignored") or []
    line = (f"imported {doc.get('format')} config {doc.get('path')} (stack {doc.get('stack')}): "
            f"{len(doc.get('mapped') or [])} settings mapped, {len(ignored)} ignored")
    if ignored:
        keys = ", ".join(str(i["key"]) for i in ignored[:6])
        more = f" +{len(ignored) - 6} more" if len(ignored) > 6 else ""
        line += f" ({keys}{more}; reasons under 'import' in --format json)"
    return line
