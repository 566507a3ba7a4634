"""`gpuplan report`: the report folder for every example job holds every file, each readable, each saying the
same thing as `gpuplan plan --format json` for the same inputs."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml"))
FILES = ("report.html", "report.pdf", "report.json", "options.csv", "assumptions.csv", "report.xlsx")


def gpuplan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120, env={**os.environ, "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"})


@pytest.fixture(scope="module", params=EXAMPLES, ids=[p.stem for p in EXAMPLES])
def example_report(request, tmp_path_factory) -> tuple[Path, Path]:
    job = request.param
    out = tmp_path_factory.mktemp(f"report-{job.stem}") / "out"
    result = gpuplan("report", str(job), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return job, out


@pytest.fixture(scope="module")
def main_report(tmp_path_factory) -> tuple[Path, Path]:
    """The flagship example's report, for the tests that need one report rather than each."""
    job = REPO / "examples" / "llama3-8b-qlora.yaml"
    if not job.exists():
        job = EXAMPLES[0]
    out = tmp_path_factory.mktemp("report-main") / "out"
    result = gpuplan("report", str(job), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return job, out


def test_examples_exist():
    assert EXAMPLES, "examples/*.yaml: no example jobs to report on"


def test_every_file_is_written(example_report):
    _, out = example_report
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], "temp files left behind"


def test_report_json_is_the_plan_document(example_report):
    job, out = example_report
    plan = gpuplan("plan", str(job), "--format", "json")
    assert plan.returncode == 0, plan.stderr
    expected = json.loads(plan.stdout)
    saved = json.loads((out / "report.json").read_text())
    expected.pop("generated_at", None)
    saved.pop("generated_at", None)
    assert saved == expected


def _same(a, b, rel: float = 0.0) -> bool:
    """JSON value `a` equals table cell `b` (CSV text, or an XLSX cell as pandas reads it)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or b == "" or (isinstance(b, float) and math.isnan(b))
    if isinstance(b, float) and math.isnan(b):
        return a == "" or a == []
    if isinstance(a, bool):
        return str(b).lower() in (("true", "1", "1.0") if a else ("false", "0", "0.0"))
    if isinstance(a, (int, float)):
        return float(b) == float(a) or abs(float(b) - float(a)) <= rel * abs(float(a))
    if isinstance(a, list):
        return str(b) == "; ".join(map(str, a)) or (not a and b in ("", None))
    if isinstance(a, dict):
        return json.loads(str(b)) == a
    if isinstance(a, str) and a[:1] in ("=", "+", "-", "@"):
        return str(b) in (a, "'" + a)  # a formula-like text is written defused
    return str(b) == str(a)


def test_options_csv_and_xlsx_equal_the_json_options(example_report):
    import pandas as pd

    _, out = example_report
    doc = json.loads((out / "report.json").read_text())
    options = doc["options"]
    csv = pd.read_csv(out / "options.csv", dtype=str, keep_default_na=False)  # exact text, parsed below
    xlsx = pd.read_excel(out / "report.xlsx", sheet_name="Options")
    # CSV: exact (floats written with repr). XLSX: openpyxl writes "%.16g" (Excel itself keeps 15 digits).
    for table, rel in ((csv, 0.0), (xlsx, 1e-15)):
        assert len(table) == len(options)
        for i, (opt, row) in enumerate(zip(options, table.to_dict("records"))):
            for key, value in opt.items():
                if isinstance(value, dict):  # config, startup: one "<key>.<entry>" column per entry
                    assert key not in row, (i, key)
                    for sub, v in value.items():
                        assert _same(v, row[f"{key}.{sub}"], rel), (i, f"{key}.{sub}", v, row[f"{key}.{sub}"])
                    continue
                assert _same(value, row[key], rel), (i, key, value, row[key])
        flattened = {f"{k}.{sub}" for o in options for k, v in o.items() if isinstance(v, dict) for sub in v}
        assert {"config.batch_size", "config.grad_accum"} <= flattened <= set(table.columns)
        assert int(table["recommended"].astype(str).str.lower().isin(["true", "1"]).sum()) == (
            1 if doc["recommendation"] else 0)


def test_assumptions_csv_and_sheets_hold_every_assumption_and_price_source(example_report):
    import pandas as pd

    _, out = example_report
    doc = json.loads((out / "report.json").read_text())
    csv = pd.read_csv(out / "assumptions.csv", dtype=str, keep_default_na=False)
    plan_rows = csv[csv["scope"] == "plan"]
    assert list(plan_rows["name"]) == [a["name"] for a in doc["assumptions"]]
    for a, value in zip(doc["assumptions"], plan_rows["value"]):
        assert _same(a["value"], value), (a, value)
    for provider, meta in doc["prices"].items():
        rows = csv[(csv["scope"] == f"prices:{provider}") & (csv["name"] == "as_of")]
        assert list(rows["value"].astype(str)) == [str(meta["as_of"])]
    # the workbook: finance assumptions on one sheet, the estimator's constants on their own
    finance = pd.read_excel(out / "report.xlsx", sheet_name="Assumptions")
    engineering = pd.read_excel(out / "report.xlsx", sheet_name="Estimator constants")
    for a, category in zip(doc["assumptions"], plan_rows["category"]):
        sheet = engineering if category == "estimator" else finance
        names = list(sheet.iloc[:, 0].astype(str))
        assert a["name"] in names, (a["name"], category)
        value = sheet[sheet.iloc[:, 0].astype(str) == a["name"]].iloc[0, 1]
        assert _same(a["value"], value, 1e-15), (a, value)
    assert not any(str(n).startswith("estimator") for n in finance.iloc[:, 0])


def test_pdf_has_pages_and_the_recommendation(example_report):
    from pypdf import PdfReader

    _, out = example_report
    doc = json.loads((out / "report.json").read_text())
    reader = PdfReader(out / "report.pdf")
    assert len(reader.pages) >= 2
    text = " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
    assert "Summary" in text and "Options" in text
    rec = doc["recommendation"]
    if rec:
        assert f"{rec['provider']} {rec['instance_type']}" in text
        assert " ".join(rec["reason"].split())[:60] in text
    else:
        assert "No recommendation" in text


def test_html_shows_the_recommendation_and_the_jsons_numbers(example_report):
    from planner.report.charts import hours_text, money

    _, out = example_report
    doc = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    rec = doc["recommendation"]
    if rec:
        assert money(rec["cost_usd"]) in html and hours_text(rec["hours"]) in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count("<svg") >= 2  # cost/time and memory charts at least


def test_from_json_regenerates_the_same_report_without_planning(main_report, tmp_path):
    _, out = main_report
    again = tmp_path / "again"
    result = gpuplan("report", "--from", str(out / "report.json"), "-o", str(again))
    assert result.returncode == 0, result.stderr
    for name in ("report.html", "report.json", "options.csv", "assumptions.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_failed_report_leaves_the_previous_one_intact(main_report, tmp_path, monkeypatch):
    import planner.report.pdf as pdf
    from planner.report import write_report

    _, out = main_report
    doc = json.loads((out / "report.json").read_text())
    target = tmp_path / "kept"
    write_report(doc, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken(_html: str):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(pdf, "start_pdf", broken)
    changed = dict(doc, job={**doc["job"], "name": "a different job"})
    with pytest.raises(RuntimeError):
        write_report(changed, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["kept"], "a temp folder was left behind"


def test_output_folder_is_created(main_report, tmp_path):
    from planner.report import write_report

    _, out = main_report
    deep = tmp_path / "a" / "b" / "c"
    written = write_report(json.loads((out / "report.json").read_text()), deep, formats=("json", "csv"))
    assert sorted(written) == ["assumptions.csv", "options.csv", "report.json"]
    assert all(p.parent == deep for p in written.values())


@pytest.mark.parametrize("setup, args, field", [
    ("garbage", ["--from", "{dir}/bad.json", "-o", "{dir}/out"], "--from"),
    ("notplan", ["--from", "{dir}/other.json", "-o", "{dir}/out"], "--from"),
    ("none", ["--from", "{dir}/missing.json", "-o", "{dir}/out"], "--from"),
    ("file", ["--from", "{dir}/other.json", "-o", "{dir}/afile"], "'-o' / '--output'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, args, field):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "afile").write_text("x")
    if setup == "file":
        (tmp_path / "other.json").write_text(json.dumps({"options": [], "recommendation": None}))
    result = gpuplan("report", *[a.format(dir=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_job_flag_is_one_line_and_exit_2(tmp_path):
    job = EXAMPLES[0] if EXAMPLES else None
    if job is None:
        pytest.fail("no example job")
    result = gpuplan("report", str(job), "--seq-len", "-5", "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: seq_len:") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pdf_is_a4_with_the_grouped_table_and_its_header_on_every_page_it_spans(main_report):
    from pypdf import PdfReader

    _, out = main_report
    doc = json.loads((out / "report.json").read_text())
    reader = PdfReader(out / "report.pdf")
    for page in reader.pages:  # A4: 210 x 297 mm = 595 x 842 pt
        assert abs(float(page.mediabox.width) - 595.3) < 1 and abs(float(page.mediabox.height) - 841.9) < 1
    texts = [" ".join(p.extract_text().split()) for p in reader.pages]
    header = "provider instance GPUs pricing cheapest region regions"
    pages_with_header = [i for i, t in enumerate(texts) if header in t]
    assert len(pages_with_header) >= 2, "the options table should span pages and repeat its header"
    # the PDF shows the grouped table, not the per-region list: far fewer rows than options
    assert len(doc["options"]) > 100 and sum(t.count(" on-demand ") + t.count(" spot ") for t in texts) < 200
    assert all(f"page {i + 1} of {len(texts)}" in t for i, t in enumerate(texts))



def _option_strategy():
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                       st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
    key = st.sampled_from(["config", "startup", "changed", "extra", "price_flag"])
    value = st.one_of(scalar, st.lists(st.text(max_size=5), max_size=3),
                      st.dictionaries(st.sampled_from(["batch_size", "a.b", "provision", "x"]), scalar, max_size=3))
    return st.lists(st.dictionaries(key, value, max_size=5), max_size=4)


def _cell_holds(value, cell: str) -> bool:
    """A CSV cell holds the value: numbers and booleans exactly, text (a list: its items joined with "; ") as the
    report writes any text (planner.report.safe.defuse: never runnable as a formula)."""
    from planner.report.safe import defuse

    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if isinstance(value, str):
        return cell == defuse(value)
    return _same(value, cell)


@settings(max_examples=80, deadline=None)
@given(_option_strategy())
@example([{"config": "\r0"}])  # a bare carriage return once split one option into two rows
def test_options_csv_flattens_any_dict_into_one_column_per_entry(options):
    """Whatever the options carry (a `report --from` document is user input): every dict entry lands in its
    "<key>.<entry>" column, every other value in its own column, one row per option."""
    import csv
    import io

    from planner.report.tables import options_csv

    text = options_csv({"options": options, "recommendation": None})
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(options)
    nested = {k for o in options for k, v in o.items() if isinstance(v, dict)}
    for opt, row in zip(options, rows):
        for key, value in opt.items():
            if key in nested:
                assert key not in row
                for sub, v in (value.items() if isinstance(value, dict) else ()):
                    assert _cell_holds(v, row[f"{key}.{sub}"]), (key, sub, v, row[f"{key}.{sub}"])
            else:
                assert _cell_holds(value, row[key]), (key, value, row[key])
