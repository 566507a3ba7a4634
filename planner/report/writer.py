"""Write a report folder from a plan document.

Everything is rendered in memory first, then written into a fresh folder that is swapped in whole, so a
failure or Ctrl-C (bad document, missing renderer) leaves the report already there exactly as it was, and a
reader never sees files of two different reports side by side.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

from planner.report.safe import finite_json
from planner.report.schema import check_schema, read_document
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
    """Raise SpecError unless ``doc`` has the shape and types of what `gpuplan plan --format json` prints."""
    return check_schema(doc, where)


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved plan document (report.json) for `gpuplan report --from`: size-limited, strict JSON, typed."""
    return read_document(path)


def document_json(doc: dict[str, Any]) -> str:
    """The document as strict JSON: a non-finite number (which no plan should hold) is written as null."""
    return json.dumps(finite_json(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_report(doc: dict[str, Any], formats: Iterable[str] = FORMATS, *, checked: bool = False
                  ) -> dict[str, bytes]:
    """File name -> contents for the requested formats, all rendered before anything is written.
    ``checked``: the document was read by load_document (strict JSON, schema checked) and needs no second pass."""
    from planner.report import page, pdf, tables

    if not checked:
        doc = check_document(finite_json(doc))  # a non-finite number is shown and saved as "n/a" / null
    wanted = list(formats)
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise SpecError("formats", f"unknown format {unknown[0]!r}", f"use some of {', '.join(FORMATS)}")
    out: dict[str, bytes] = {}
    html_text = page.render_html(doc) if ("html" in wanted or "pdf" in wanted) else ""
    printing = pdf.start_pdf(html_text) if "pdf" in wanted else None  # prints while the tables are built
    try:
        if "json" in wanted:
            out["report.json"] = document_json(doc).encode()
        if "html" in wanted:
            out["report.html"] = html_text.encode()
        if "csv" in wanted:
            out["options.csv"] = tables.options_csv(doc).encode()
            out["assumptions.csv"] = tables.assumptions_csv(doc).encode()
        if "xlsx" in wanted:
            out["report.xlsx"] = tables.report_xlsx(doc)
        if printing is not None:
            out["report.pdf"] = printing.result()
    except BaseException:
        if printing is not None:
            printing.cancel()
        raise
    return {name: out[name] for fmt in FORMATS if fmt in wanted for name in FILES[fmt]}


ALL_FILES = frozenset(name for names in FILES.values() for name in names)


def check_target(out_dir: str | os.PathLike[str] | None) -> Path:
    """The report folder, refused (one line, before any work) when it cannot hold a report set: an empty path,
    a file or other non-directory, or a folder holding files that are not a report's (the swap would drop them)."""
    if out_dir is None or str(out_dir).strip() == "":
        raise SpecError("-o", "is empty", "give the folder to write the report into, e.g. -o report/")
    target = Path(out_dir)
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise SpecError("-o", f"{target} exists and is not a directory", "give a folder path")
        foreign = sorted(p.name for p in target.iterdir() if p.name not in ALL_FILES)
        if foreign:
            raise SpecError("-o", f"{target} holds files that are not part of a report ({foreign[0]}"
                            f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''})",
                            "give a new folder or one that holds only a previous report")
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def swap_in(target: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write ``files`` into a fresh sibling folder, then put it in ``target``'s place.

    A reader sees the previous set or the new one, never a mix: the old folder is renamed aside and the new one
    renamed in (two renames in one directory, microseconds apart), then the old one removed. Any failure or
    Ctrl-C before the swap removes the fresh folder and leaves the previous set as it was.
    """
    real = Path(os.path.realpath(target))  # a symlinked report folder: swap the folder it points at
    parent = real.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError("-o", f"cannot create {parent} ({exc.strerror})", "give a writable folder") from None
    try:
        fresh = Path(tempfile.mkdtemp(prefix=f".{real.name}.new-", dir=parent))
    except OSError as exc:
        raise SpecError("-o", f"cannot write in {parent} ({exc.strerror})", "give a writable folder") from None
    old: Path | None = None
    try:
        os.chmod(fresh, 0o777 & ~_umask())
        for name, data in files.items():
            with open(fresh / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if real.exists():
            old = parent / f".{real.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(real, old)
            try:
                os.rename(fresh, real)
            except BaseException:
                os.rename(old, real)
                old = None
                raise
        else:
            os.rename(fresh, real)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return {name: target / name for name in files}


def write_report(doc: dict[str, Any], out_dir: str | os.PathLike[str],
                 formats: Iterable[str] = FORMATS, *, checked: bool = False) -> dict[str, Path]:
    """Write the report files for ``doc`` as one set into ``out_dir`` (created if needed); returns name -> path.

    Reads only the document: every number shown is one the plan computed. The set replaces the previous one
    whole (see swap_in); a report file of a format not asked for this time does not survive from the old set.
    """
    target = check_target(out_dir)
    files = render_report(doc, formats, checked=checked)
    return swap_in(target, files)
