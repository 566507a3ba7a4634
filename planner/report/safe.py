"""What makes the report's files safe to open: spreadsheet text that cannot run as a formula, and JSON with no
NaN/Infinity (which strict JSON readers reject).

CSV/formula injection rule (OWASP "CSV Injection", 2024): a text cell that starts with = + - @ (or a tab or
carriage return, which some spreadsheet programs strip before parsing) is prefixed with a single quote so it is
read as text. Numbers stay numbers: only strings are touched, and a string that parses as a plain number
("-5", "+3.2") is left as is since the spreadsheet reads it as that number and nothing else.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def defuse(text: str) -> str:
    """A text cell as a spreadsheet must show it: never as a formula."""
    if text and text.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def text_cell(v: Any) -> Any:
    """A document value as a spreadsheet cell (XLSX and CSV alike): text defused, a dict as sorted JSON text, a
    list as its items joined with "; "; anything else as it is."""
    if isinstance(v, str):
        return defuse(v)
    if isinstance(v, dict):
        return defuse(json.dumps(v, sort_keys=True))
    if isinstance(v, list):
        return defuse("; ".join(map(str, v)))
    return v


def finite_json(value: Any) -> Any:
    """A copy of ``value`` with every non-finite float replaced by None (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value
