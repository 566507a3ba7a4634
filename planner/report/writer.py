"""Write a report folder from a plan document.

Everything is rendered in memory first and only then written, each file atomically, so a failure
(bad document, missing renderer) leaves the reports already in the folder exactly as they were.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from pricing.cache import write_atomic
from train.spec import SpecError

FORMATS = ("json", "html", "pdf", "csv", "xlsx")
FILES = {
    "json": ("report.json",),
    "html": ("report.html",),
    "pdf": ("report.pdf",),
    "csv": ("options.csv", "assumptions.csv"),
    "xlsx": ("report.xlsx",),
}
REQUIRED_KEYS = ("options", "recommendation")


def check_document(doc: Any, where: str = "plan document") -> dict[str, Any]:
    """Raise SpecError unless ``doc`` looks like what `gpuplan plan --format json` prints."""
    if not isinstance(doc, dict):
        raise SpecError(where, "is not a JSON object", "give the report.json (or plan --format json output) of a plan")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise SpecError(where, f"is not a gpuplan plan document (no {', '.join(missing)})",
                        "give the report.json written by gpuplan report, or gpuplan plan --format json output")
    if not isinstance(doc["options"], list):
        raise SpecError(f"{where}.options", "must be a list", "regenerate it with gpuplan plan --format json")
    return doc


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved plan document (report.json) for `gpuplan report --from`."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("--from", f"{p} does not exist or is not a file", "give the path of a report.json")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError("--from", f"{p} is not valid JSON ({exc.__class__.__name__})",
                        "give the report.json written by gpuplan report") from None
    return check_document(doc, "--from")


def document_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_report(doc: dict[str, Any], formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """File name -> contents for the requested formats, all rendered before anything is written."""
    from planner.report import page, pdf, tables

    check_document(doc)
    wanted = list(formats)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise SpecError("formats", f"unknown format {unknown[0]!r}", f"use some of {', '.join(FORMATS)}")
    out: dict[str, bytes] = {}
    html_text = page.render_html(doc) if ("html" in wanted or "pdf" in wanted) else ""
    builders: dict[str, Callable[[], None]] = {
        "json": lambda: out.__setitem__("report.json", document_json(doc).encode()),
        "html": lambda: out.__setitem__("report.html", html_text.encode()),
        "pdf": lambda: out.__setitem__("report.pdf", pdf.html_to_pdf(html_text)),
        "csv": lambda: (out.__setitem__("options.csv", tables.options_csv(doc).encode()),
                        out.__setitem__("assumptions.csv", tables.assumptions_csv(doc).encode())),
        "xlsx": lambda: out.__setitem__("report.xlsx", tables.report_xlsx(doc)),
    }
    for fmt in FORMATS:
        if fmt in wanted:
            builders[fmt]()
    return out


def write_report(doc: dict[str, Any], out_dir: str | os.PathLike[str],
                 formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Write the report files for ``doc`` into ``out_dir`` (created if needed); returns name -> path.

    Reads only the document: every number shown is one the plan computed.
    """
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise SpecError("-o", f"{target} exists and is not a directory", "give a folder path")
    files = render_report(doc, formats)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError("-o", f"cannot create {target} ({exc.strerror})", "give a writable folder") from None
    return {name: write_atomic(target / name, data) for name, data in files.items()}
