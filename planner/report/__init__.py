"""Finance reports: report.html/.pdf/.json, options.csv, assumptions.csv, report.xlsx from a plan document.

`write_report(doc, out_dir)` is the entry point; it reads only the plan document (what
`gpuplan plan --format json` prints) and never recomputes a plan number.
"""
from __future__ import annotations

from planner.report.writer import FORMATS, check_document, load_document, render_report, write_report

__all__ = ["FORMATS", "check_document", "load_document", "render_report", "write_report"]
