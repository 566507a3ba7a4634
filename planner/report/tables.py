"""options.csv and assumptions.csv (report.xlsx: planner/report/xlsx.py).

CSV floats are written with repr() so they read back equal to the JSON numbers; booleans as
true/false; missing values as empty cells; text that a spreadsheet would run as a formula is defused.
An option's dict-valued keys (config, startup) become one column per entry, "<key>.<entry>" (config.batch_size,
startup.provision ...); its lists (changed, notes) one column each, items joined with "; ".
"""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from planner.report.rows import ASSUMPTION_COLUMNS, OPTION_COLUMNS, assumption_rows, option_rows
from planner.report.safe import text_cell


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return text_cell(v)


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    # RFC 4180 line ends: the csv module quotes a field holding any character of the line terminator, so with
    # "\r\n" a stray carriage return inside a cell is quoted instead of ending the row ("\n" alone let a bare
    # "\r" split one option into two rows in Excel and Python's reader alike).
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def options_csv(doc: dict[str, Any]) -> str:
    """Every per-region option; OPTION_COLUMNS, then any further keys the plan's options carry."""
    from planner.report.xlsx import option_columns, option_value

    cols = option_columns(doc)  # dict-valued keys (config, startup) flattened into "<key>.<entry>" columns
    rows = option_rows(doc)
    for row, opt in zip(rows, doc.get("options") or []):
        for c in cols[len(OPTION_COLUMNS):]:
            row[c] = option_value(opt, c)
    return rows_to_csv(rows, cols)


def assumptions_csv(doc: dict[str, Any]) -> str:
    return rows_to_csv(assumption_rows(doc), ASSUMPTION_COLUMNS)


def report_xlsx(doc: dict[str, Any]) -> bytes:
    """The live workbook (planner/report/xlsx.py)."""
    from planner.report.xlsx import report_xlsx as build

    return build(doc)
