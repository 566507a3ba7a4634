"""report.xlsx is a live workbook: its Summary and Local TCO are formulas over the Assumptions sheet that equal the
plan's own figures, and after finance changes an assumption and the workbook is recalculated (LibreOffice, headless)
the Summary equals what `gpuplan plan` computes with that assumption changed. Options: all per-region rows,
filterable, frozen header, money and hour formats, the recommendation highlighted."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_report_doc import JOB, full_plan_document, plan_document

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def _workbook(doc: dict):
    from openpyxl import load_workbook

    from planner.report.xlsx import report_xlsx

    return load_workbook(io.BytesIO(report_xlsx(doc)))


def _summary(ws) -> dict[str, tuple]:
    """Summary rows by item name: (value, unit, the plan's figure)."""
    out = {}
    for row in ws.iter_rows(min_row=4, max_col=4, values_only=True):
        if not row[0]:
            break  # the plan's own period table follows the blank row
        out[row[0]] = row[1:4]
    return out


def _input_row(ws, name: str) -> int:
    for row in ws.iter_rows(min_row=2, max_col=1):
        if row[0].value == name:
            return row[0].row
    raise AssertionError(f"no assumption {name!r}")


def _recalculate(tmp_path: Path, wb, name: str) -> dict[str, tuple]:
    """Save, recalculate headless with LibreOffice, read the Summary's computed values back."""
    from openpyxl import load_workbook

    if not SOFFICE:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice (soffice) is required under CI: apt-get install libreoffice-calc")
        pytest.skip("LibreOffice not installed (apt-get install libreoffice-calc)")
    src = tmp_path / f"{name}.xlsx"
    wb.save(src)
    out = tmp_path / "recalc"
    out.mkdir(exist_ok=True)
    result = subprocess.run([SOFFICE, "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/lo",
                             "--convert-to", "xlsx", "--outdir", str(out), str(src)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and (out / src.name).is_file(), result.stderr
    return _summary(load_workbook(out / src.name, data_only=True)["Summary"])


def _equal_where_both(summary: dict[str, tuple], rel: float = 1e-9) -> int:
    checked = 0
    for item, (value, _unit, plan_value) in summary.items():
        if isinstance(plan_value, (int, float)) and not isinstance(plan_value, bool):
            assert value == pytest.approx(plan_value, rel=rel), item
            checked += 1
    return checked


@pytest.fixture(scope="module")
def full_doc() -> dict:
    return full_plan_document()


def test_sheets_formats_and_the_recommended_row(full_doc):
    wb = _workbook(full_doc)
    assert wb.sheetnames == ["Summary", "Options", "Local TCO", "Sensitivity", "Assumptions", "Estimator constants"]
    opts = wb["Options"]
    header = [c.value for c in opts[1]]
    assert opts.freeze_panes == "A2" and opts.auto_filter.ref == f"A1:{opts.cell(1, len(header)).column_letter}" \
        f"{len(full_doc['options']) + 1}"
    assert opts.max_row == len(full_doc["options"]) + 1
    cost_col, hours_col = header.index("cost_usd") + 1, header.index("hours") + 1
    assert opts.cell(2, cost_col).number_format.startswith('"$"') and "h" in opts.cell(2, hours_col).number_format
    rec_rows = [r for r in range(2, opts.max_row + 1) if opts.cell(r, 1).value is True]
    assert len(rec_rows) == 1 and opts.cell(rec_rows[0], 2).fill.fgColor.rgb.endswith("E2F4EC")
    flag_col = header.index("price_flag") + 1
    flagged = [r for r in range(2, opts.max_row + 1) if opts.cell(r, flag_col).value == "outlier"]
    assert flagged and all(opts.cell(r, 2).fill.fgColor.rgb.endswith("FDF0D5") for r in flagged if r not in rec_rows)
    summary = wb["Summary"]
    formulas = [c.value for row in summary.iter_rows(min_col=2, max_col=2) for c in row if c.data_type == "f"]
    assert len(formulas) >= 15 and any("Assumptions!" in f for f in formulas) and any("'Local TCO'!" in f
                                                                                      for f in formulas)
    tco = [c.value for row in wb["Local TCO"].iter_rows(min_row=2, min_col=2) for c in row]
    assert tco and all(isinstance(v, str) and v.startswith("=") for v in tco)
    names = [r[0] for r in wb["Assumptions"].iter_rows(min_row=2, values_only=True)]
    assert names[:3] == ["runs per month", "horizon", "other busy hours on the local GPUs"]
    assert not any(str(n).startswith("estimator") for n in names)
    assert all(str(r[0]).startswith("estimator") or r[0] for r in wb["Estimator constants"].iter_rows(
        min_row=2, values_only=True))


def test_recalculated_summary_equals_the_plan_and_the_plans_periods(full_doc, tmp_path):
    summary = _recalculate(tmp_path, _workbook(full_doc), "as-planned")
    assert _equal_where_both(summary) >= 9  # every figure the plan has, the formulas reproduce
    assert summary["cloud per month"][0] == pytest.approx(
        full_doc["periods"]["scenarios"]["cloud"]["per_month_usd"], rel=1e-9)
    from openpyxl import load_workbook

    table = list(load_workbook(tmp_path / "recalc" / "as-planned.xlsx", data_only=True)["Summary"].iter_rows(
        values_only=True))
    start = next(i for i, r in enumerate(table) if r[0] == "the plan's period totals")
    for row in table[start + 1:]:
        s = full_doc["periods"]["scenarios"][row[0]]
        expected = [s["per_run_usd"], s["per_month_usd"], s["per_year_usd"], s["horizon_usd"], s["capex_usd"],
                    s["running_per_month_usd"], s["payback_month"]]
        assert list(row[1:8]) == pytest.approx(expected, rel=1e-14)  # LibreOffice keeps 15 digits


def test_changed_assumptions_recalculate_to_what_the_plan_computes_with_them(tmp_path):
    """Electricity price and runs per month changed in the workbook == `plan` with that profile and workload."""
    from planner.plan import plan_job
    from train.spec import load_spec

    doc = plan_document(20.0)
    wb = _workbook(doc)
    ws = wb["Assumptions"]
    profile = _summary(wb["Summary"])["local profile compared"][0]
    ws.cell(_input_row(ws, f"{profile}: electricity price"), 2).value = 0.31
    ws.cell(_input_row(ws, "runs per month"), 2).value = 55
    got = _recalculate(tmp_path, wb, "changed")

    custom = tmp_path / "custom.yaml"
    custom.write_text(yaml.safe_dump({"base": profile, "name": profile, "electricity_usd_per_kwh": 0.31}))
    replanned = plan_job(load_spec(JOB), runs_per_month=55.0, local_profiles=[str(custom)])
    entry = next(p for p in replanned["local_profiles"] if p["name"] == profile)
    rec = replanned["recommendation"]
    assert got["local utilisation"][0] == pytest.approx(entry["utilisation"], abs=1e-12)
    assert got["local cost per GPU-hour at that utilisation"][0] == pytest.approx(entry["usd_per_gpu_hour"], rel=1e-6)
    assert got["local cost per run, fully loaded"][0] == pytest.approx(entry["loaded_cost_usd"], rel=1e-4)
    assert got["break-even utilisation against the recommendation"][0] == pytest.approx(
        entry["break_even_vs_recommendation"], rel=1e-9)
    # the period totals follow the plan's definitions (planner.decide.periods): each run at its all-in cost
    # (with start-up, billed as the provider bills), local power for the runs plus upkeep, capex in month 0
    assert got["cloud cost per run"][0] == pytest.approx(rec["cost_with_startup_usd"], rel=1e-9)
    scen = replanned["periods"]["scenarios"]
    assert got["cloud per month"][0] == pytest.approx(scen["cloud"]["per_month_usd"], abs=1e-9)
    for name in ("local", "hybrid"):
        for key, item in (("per_month_usd", "per month"), ("per_year_usd", "per year"),
                          ("horizon_usd", "over the horizon (capex + running)"), ("capex_usd", "capex up front"),
                          ("per_run_usd", "per run over the horizon")):
            assert got[f"{name} {item}"][0] == pytest.approx(scen[name][key], abs=1e-9), (name, item)
        payback = scen[name]["payback_month"]
        assert got[f"{name} payback month against cloud"][0] == ("never" if payback is None else payback)
    assert got["cheapest over the horizon"][0] == replanned["periods"]["cheapest"]
    # and it moved: the workbook did not just keep the old figures
    before = _summary(wb["Summary"])
    assert got["local cost per GPU-hour at that utilisation"][0] != pytest.approx(
        before["local cost per GPU-hour at that utilisation"][2], rel=1e-3)


def test_a_workload_beyond_the_local_machine_recalculates_to_the_plans_hybrid_and_payback(tmp_path):
    """300 runs a month: more than the workstation takes, so local alone is not feasible, the hybrid sends the rest
    to the cloud, and owning pays back within the horizon -- the workbook reproduces each of the plan's figures."""
    doc = plan_document(300.0)
    scen = doc["periods"]["scenarios"]
    assert scen["local"]["feasible"] is False and 0 < scen["hybrid"]["local_share"] < 1
    assert scen["local"]["payback_month"] and scen["hybrid"]["payback_month"]
    got = _recalculate(tmp_path, _workbook(doc), "beyond")
    assert _equal_where_both(got) >= 25
    assert got["local payback month against cloud"][0] == scen["local"]["payback_month"]
    assert got["hybrid payback month against cloud"][0] == scen["hybrid"]["payback_month"]
    assert got["local can take every run"][0] == "no"
    assert got["cheapest over the horizon"][0] == doc["periods"]["cheapest"] == "hybrid"


def test_a_plan_without_local_hardware_still_has_a_summary():
    doc = plan_document(None)
    doc["local_profiles"] = []
    doc["options"] = [o for o in doc["options"] if o["target"] != "local"]
    summary = _summary(_workbook(doc)["Summary"])
    assert "cloud cost per run" in summary and "local profile compared" not in summary


def test_a_plan_without_a_dataset_size_gives_the_per_token_cost_and_no_period_totals():
    import dataclasses

    from planner.plan import plan_job
    from train.spec import load_spec

    spec = dataclasses.replace(load_spec(JOB), dataset_tokens=None, dataset_examples=None)
    doc = plan_job(spec)
    assert doc["recommendation"]["hours"] is None
    summary = _summary(_workbook(doc)["Summary"])
    # money to a millionth of a cent: a spreadsheet cell keeps 15-16 significant digits, not the last bit
    assert summary["cost per million tokens"][0] == pytest.approx(doc["recommendation"]["usd_per_million_tokens"],
                                                                  abs=1e-8)
    assert "cloud cost per run" not in summary and "local cost per run, fully loaded" not in summary
