"""The report's files are safe to open and to regenerate: text never runs as a spreadsheet formula, JSON is
strict, a saved document is checked by schema (one line and exit 2 for anything malformed, quickly, however
large), and the six files appear as one set: a failure, a Ctrl-C or a bad target leaves the previous set whole."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from test_report_doc import full_plan_document

REPO = Path(__file__).resolve().parents[1]
FILES = {"report.html", "report.pdf", "report.json", "options.csv", "assumptions.csv", "report.xlsx"}
PAYLOADS = ("=HYPERLINK(\"http://x.test\",\"click\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,1)", "\t=1+1")


def gpuplan(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, **(env or {})})


def small_document(n: int = 6) -> dict:
    """A real plan with every key of the shared contract, trimmed to a few options (the recommendation kept), for
    fast schema and render checks."""
    doc = full_plan_document(horizon=12)
    rec = doc["recommendation"]
    keep = [o for o in doc["options"] if o["instance_type"] == rec["instance_type"]][:1]
    keep += [o for o in doc["options"] if o not in keep][: n - 1]
    doc["options"] = keep
    return doc


@pytest.fixture(scope="module")
def small_doc() -> dict:
    return small_document()


# -- formula injection -----------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_defused_text_never_starts_a_formula_unless_it_is_a_plain_number(text):
    from planner.report.safe import FORMULA_START, _PLAIN_NUMBER, defuse

    out = defuse(text)
    if out.startswith(FORMULA_START):
        assert _PLAIN_NUMBER.match(out) and out == text
    assert out in (text, "'" + text)


def test_csv_and_xlsx_write_formula_like_text_as_text_and_numbers_as_numbers(small_doc, tmp_path):
    from openpyxl import load_workbook

    from planner.report import write_report

    doc = json.loads(json.dumps(small_doc))
    for o, payload in zip(doc["options"], PAYLOADS):
        o["notes"] = [payload]
        o["source"] = payload
    doc["job"]["name"] = PAYLOADS[0]
    write_report(doc, tmp_path / "out", formats=("csv", "xlsx"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "options.csv").read_text())))
    for row, payload in zip(rows, PAYLOADS):
        assert row["notes"] == "'" + payload and row["source"] == "'" + payload
        float(row["usd_per_hour"])  # numbers stay numbers
    wb = load_workbook(tmp_path / "out" / "report.xlsx")
    for ws in wb.worksheets:
        if ws.title in ("Summary", "Local TCO"):
            continue  # their formulas are ours, checked in test_report_xlsx
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
    opts = wb["Options"]
    header = [c.value for c in opts[1]]
    for r, payload in zip(range(2, 2 + len(PAYLOADS)), PAYLOADS):
        assert opts.cell(row=r, column=header.index("notes") + 1).value == "'" + payload
        assert isinstance(opts.cell(row=r, column=header.index("usd_per_hour") + 1).value, float)
    summary_title = wb["Summary"]["A1"]
    assert summary_title.data_type == "s" and not str(summary_title.value).startswith("=")


# -- strict JSON -------------------------------------------------------------------------------------------------

def test_report_json_never_holds_nan_or_infinity(small_doc, tmp_path):
    from planner.report import write_report

    doc = json.loads(json.dumps(small_doc))
    doc["options"][1]["cost_usd"] = math.inf
    doc["options"][1]["hours"] = math.nan
    doc["accuracy"]["memory_mape_pct"] = -math.inf
    write_report(doc, tmp_path / "out", formats=("json",))

    def refuse(name: str) -> float:
        raise AssertionError(f"{name} in report.json")

    saved = json.loads((tmp_path / "out" / "report.json").read_text(), parse_constant=refuse)
    assert saved["options"][1]["cost_usd"] is None and saved["options"][1]["hours"] is None


# -- --from validates by schema ------------------------------------------------------------------------------------

def _paths(value, prefix=()):
    """Every (path, value) in a JSON document, depth first."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["8", "1e999", "", "=1+1", "tight"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=int(os.environ.get("GPUPLAN_HYPOTHESIS_EXAMPLES", "80")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_from_either_reads_a_valid_document_or_refuses_it_in_one_line(small_doc, tmp_path_factory, data):
    """Any one value of a real document replaced by any JSON value: the reader accepts it and the report renders,
    or it is refused with a SpecError naming where -- never another exception."""
    from planner.report.writer import load_document, render_report
    from train.spec import SpecError

    doc = json.loads(json.dumps(small_doc))
    paths = [p for p, _ in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    _set(doc, path, data.draw(JSON_VALUES))
    f = tmp_path_factory.mktemp("from") / "report.json"
    f.write_text(json.dumps(doc))
    try:
        loaded = load_document(f)
    except SpecError as exc:
        line = exc.one_line()
        assert "\n" not in line and line.startswith("--from")
        return
    render_report(loaded, formats=("json", "html", "csv", "xlsx"), checked=True)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["options"][0].__setitem__("gpus", "8"), "options[0].gpus"),
    (lambda d: d["options"][1].__setitem__("usd_per_hour", "2.50"), "options[1].usd_per_hour"),
    (lambda d: d["options"][0].__setitem__("fits", "yes"), "options[0].fits"),
    (lambda d: d["recommendation"].__setitem__("cost_usd", -1.0), "recommendation.cost_usd"),
    (lambda d: d.__setitem__("options", {"a": 1}), "options"),
    (lambda d: d.__setitem__("sensitivity", "none"), "sensitivity"),
])
def test_from_names_the_wrong_key_in_one_line(small_doc, tmp_path, mutate, where):
    doc = json.loads(json.dumps(small_doc))
    mutate(doc)
    f = tmp_path / "report.json"
    f.write_text(json.dumps(doc))
    result = gpuplan("report", "--from", str(f), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and where in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ['{"options": [], "recommendation": null, "x": Infinity}',
                                  '{"options": [], "recommendation": null, "x": NaN}',
                                  '{"options": [], "recommendation": null, "x": 1e999}',
                                  '{"options": [], "recommendation": null, "x": ' + "9" * 5000 + "}",
                                  "[" * 100000 + "]" * 100000],
                         ids=["infinity", "nan", "overflow", "huge-int", "deep"])
def test_from_refuses_non_strict_json(tmp_path, text):
    f = tmp_path / "report.json"
    f.write_text(text)
    result = gpuplan("report", "--from", str(f), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--from" in result.stderr, result.stderr


def test_from_refuses_a_50_mb_document_quickly(tmp_path):
    f = tmp_path / "report.json"
    with f.open("w") as fh:
        fh.write('{"options": [')
        fh.write(",".join(['{"target": "cloud"}'] * 2_700_000))
        fh.write('], "recommendation": null}')
    assert f.stat().st_size > 50e6
    start = time.monotonic()
    result = gpuplan("report", "--from", str(f), "-o", str(tmp_path / "out"))
    took = time.monotonic() - start
    assert result.returncode == 2 and "over the 20 MB limit" in result.stderr and result.stderr.count("\n") == 1
    assert took < 10, f"refusing took {took:.1f} s"  # the interpreter's start-up; the check itself reads no byte


# -- the report folder --------------------------------------------------------------------------------------------

def test_bad_targets_are_refused_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    job = str(REPO / "examples" / "llama3-8b-qlora.yaml")
    for target, words in ((afile, "not a directory"), (busy, "not part of a report"), ("", "is empty"),
                          (tmp_path / "link-to-dev-null", "not a directory")):
        if str(target).endswith("link-to-dev-null"):
            os.symlink("/dev/null", target)
        result = gpuplan("report", job, "-o", str(target))
        assert result.returncode == 2, (target, result.stderr)
        assert result.stderr.count("\n") == 1 and "-o" in result.stderr, result.stderr
    assert afile.read_text() == "keep me" and (busy / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def _fake_chromium(tmp_path: Path, seconds: float) -> Path:
    script = tmp_path / "slow-chromium"
    script.write_text(f"#!/bin/sh\nexec sleep {seconds}\n")
    script.chmod(0o755)
    return script


def test_ctrl_c_exits_130_and_leaves_the_previous_report_whole(small_doc, tmp_path):
    from planner.report import write_report

    out = tmp_path / "report"
    write_report(small_doc, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == FILES
    changed = json.loads(json.dumps(small_doc))
    changed["job"]["name"] = "a different job"
    saved = tmp_path / "changed.json"
    saved.write_text(json.dumps(changed))
    slow = _fake_chromium(tmp_path, 60)  # the PDF step hangs: Ctrl-C lands mid-report
    proc = subprocess.Popen([sys.executable, "-m", "planner.cli", "report", "--from", str(saved), "-o", str(out)],
                            cwd=REPO, env={**os.environ, "GPUPLAN_CHROMIUM": str(slow),
                                           "GPUPLAN_PDF_ENGINE": "chromium"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the fake browser runs (the tables are being built)
            if subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True).stdout.strip():
                break
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changed.json", "report", "slow-chromium"]


def test_a_new_report_replaces_the_old_set_whole(small_doc, tmp_path):
    from planner.report import write_report

    out = tmp_path / "report"
    write_report(small_doc, out)
    changed = json.loads(json.dumps(small_doc))
    changed["job"]["name"] = "second"
    write_report(changed, out, formats=("json", "csv"))
    assert sorted(p.name for p in out.iterdir()) == ["assumptions.csv", "options.csv", "report.json"]
    assert json.loads((out / "report.json").read_text())["job"]["name"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(JSON_VALUES.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                         st.fixed_dictionaries({"train_time_s": JSON_VALUES, "steps": JSON_VALUES,
                                                "step_time_s": JSON_VALUES}).map(json.dumps)))
def test_actual_runs_reader_takes_any_summary_json_without_crashing(small_doc, tmp_path_factory, content):
    """`--actual RUN_DIR`: whatever summary.json holds, the row is built (n/a where a figure is missing or not a
    number) or the run is refused with one line naming --actual."""
    from planner.report.actual import actual_rows
    from train.spec import SpecError

    run = tmp_path_factory.mktemp("run")
    (run / "summary.json").write_text(content, encoding="utf-8")
    try:
        rows = actual_rows(small_doc, [str(run)])
    except SpecError as exc:
        assert exc.one_line().startswith("--actual") and "\n" not in exc.one_line()
        return
    (row,) = rows
    for key in ("measured_hours", "measured_cost_usd", "cost_diff_pct"):
        assert row[key] is None or (isinstance(row[key], float) and math.isfinite(row[key]))
