"""options.csv, assumptions.csv and report.xlsx (sheets: options, assumptions, sensitivity).

CSV floats are written with repr() so they read back equal to the JSON numbers; booleans as
true/false; missing values as empty cells.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from planner.report.pdf import ReportDependencyError
from planner.report.rows import (ASSUMPTION_COLUMNS, OPTION_COLUMNS, SENSITIVITY_COLUMNS, assumption_rows,
                                 option_rows, sensitivity_table)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return "; ".join(map(str, v)) if isinstance(v, list) else str(v)
    return v


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def options_csv(doc: dict[str, Any]) -> str:
    return rows_to_csv(option_rows(doc), OPTION_COLUMNS)


def assumptions_csv(doc: dict[str, Any]) -> str:
    return rows_to_csv(assumption_rows(doc), ASSUMPTION_COLUMNS)


def _xlsx_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return _cell(v)
    return v  # None stays an empty cell; bools and numbers keep their type


def report_xlsx(doc: dict[str, Any]) -> bytes:
    """The workbook as bytes: one sheet per table, header row frozen and bold, columns sized to fit."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font
    except ImportError as exc:
        raise ReportDependencyError(f"report.xlsx needs openpyxl ({exc}); pip install 'gpuplan[report]'") from None
    wb = Workbook()
    sheets = (("options", option_rows(doc), OPTION_COLUMNS),
              ("assumptions", assumption_rows(doc), ASSUMPTION_COLUMNS),
              ("sensitivity", sensitivity_table(doc), SENSITIVITY_COLUMNS))
    first = True
    for title, rows, columns in sheets:
        ws = wb.active if first else wb.create_sheet()
        first = False
        ws.title = title
        ws.append(list(columns))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append([_xlsx_value(row.get(c)) for c in columns])
        ws.freeze_panes = "A2"
        for i, col in enumerate(columns, start=1):
            width = max([len(col)] + [len(str(row.get(col) or "")) for row in rows[:200]])
            ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = min(width + 2, 60)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
