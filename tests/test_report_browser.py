"""report.html in a real headless Chromium: renders offline with no console errors and no requests, is not a
blank page, and a job name full of HTML and script shows up as text."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GPUPLAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAYLOAD = "<script>alert(1)</script><b>x</b>"


def _job() -> Path:
    preferred = REPO / "examples" / "llama3-8b-qlora.yaml"
    found = sorted((REPO / "examples").glob("*.yaml"))
    assert found, "examples/*.yaml: no example job"
    return preferred if preferred.exists() else found[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (or set GPUPLAN_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def injected_report(tmp_path_factory) -> Path:
    """The report of an example job renamed to an HTML + script payload."""
    work = tmp_path_factory.mktemp("inject")
    spec = yaml.safe_load(_job().read_text())
    spec["name"] = PAYLOAD
    spec.pop("data", None)  # the data path is relative to the example's folder; the planner ignores it
    job = work / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    out = work / "out"
    result = subprocess.run([sys.executable, "-m", "planner.cli", "report", str(job), "-o", str(out)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return out / "report.html"


def _open(browser, html: Path, events: dict[str, list]):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: events["console"].append(f"pageerror: {e}"))
    page.on("request", lambda r: events["requests"].append(r.url))
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.goto(html.as_uri(), wait_until="load")
    return page


def test_report_renders_offline_without_errors_and_is_not_blank(browser, injected_report, tmp_path):
    from PIL import Image

    events: dict[str, list] = {"console": [], "requests": [], "dialogs": []}
    page = _open(browser, injected_report, events)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert events["console"] == []
    assert events["requests"] == [injected_report.as_uri()], "the report fetched something besides itself"
    image = Image.open(shot).convert("L")
    width, height = image.size
    assert height > 2000, "full page is suspiciously short"
    hist = image.histogram()
    non_white = sum(hist[:240]) / (width * height)
    assert non_white > 0.03, f"screenshot is almost blank ({non_white:.1%} ink)"
    # every chart drew something: each SVG on the page has a laid-out size and marks in it
    boxes = page.eval_on_selector_all("svg", "els => els.map(e => [e.getBoundingClientRect().width,"
                                             " e.getBoundingClientRect().height, e.querySelectorAll('*').length])")
    assert len(boxes) >= 2 and all(w > 300 and h > 80 and n > 10 for w, h, n in boxes), boxes
    page.close()


def test_job_name_with_html_and_script_shows_as_text(browser, injected_report):
    events: dict[str, list] = {"console": [], "requests": [], "dialogs": []}
    page = _open(browser, injected_report, events)
    assert events["dialogs"] == [], "a script from the job name ran"
    assert page.locator("script").count() == 0
    assert page.locator("h1 b").count() == 0, "the job name's <b> became markup"
    assert PAYLOAD in page.locator("h1").inner_text()
    assert PAYLOAD in page.title()
    page.close()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in injected_report.read_text()


def test_print_layout_keeps_the_content(browser, injected_report, tmp_path):
    """Printing (what the PDF and a reviewer's print-out get) keeps every section and fits A4."""
    from pypdf import PdfReader

    events: dict[str, list] = {"console": [], "requests": [], "dialogs": []}
    page = _open(browser, injected_report, events)
    pdf = tmp_path / "print.pdf"
    page.pdf(path=str(pdf), format="A4")
    page.close()
    reader = PdfReader(pdf)
    text = " ".join(p.extract_text() for p in reader.pages)
    for heading in ("Summary", "Options", "Cost against time to result", "Sensitivity", "Memory of the chosen setup",
                    "Assumptions and price sources", "How accurate the estimates are"):
        assert heading in text, heading
    assert events["requests"] == [injected_report.as_uri()]


# -- the first screen and the phone ----------------------------------------------------------------------------

SCREENS = os.environ.get("GPUPLAN_SCREENSHOTS")  # benchmarks/report_speed.py sets it to keep the screenshots


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    """The report of a full plan document (every key of the shared contract filled)."""
    from planner.report import write_report
    from test_report_doc import full_plan_document

    out = tmp_path_factory.mktemp("full") / "report"
    write_report(full_plan_document(), out, formats=("json", "html"))
    return out / "report.html"


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = (Path(SCREENS) if SCREENS else tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path


def test_first_screen_holds_the_decision_its_ranges_and_the_risks(browser, full_report, tmp_path):
    from PIL import Image

    events: dict[str, list] = {"console": [], "requests": [], "dialogs": []}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda r: events["requests"].append(r.url))
    page.goto(full_report.as_uri(), wait_until="load")
    shot = _shot(page, tmp_path, "first-screen-1280x900.png")
    for selector in (".recommendation .headline", ".fig .big", ".fig .range", ".risks li", ".alternatives li"):
        boxes = page.eval_on_selector_all(selector, "els => els.map(e => e.getBoundingClientRect().bottom)")
        assert boxes and max(boxes) <= 900, (selector, boxes)
    first = page.inner_text("#summary")
    assert "range $" in first and "Main risks" in first and "USD, before tax" in first
    image = Image.open(shot).convert("L")
    assert sum(image.histogram()[:240]) / (image.width * image.height) > 0.03
    assert events["requests"] == [full_report.as_uri()]
    page.close()


def test_phone_width_page_is_no_wider_than_the_screen_and_charts_stay_readable(browser, full_report, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(full_report.as_uri(), wait_until="load")
    _shot(page, tmp_path, "phone-390.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # every table sits in a box that scrolls sideways instead of widening the page
    loose = page.eval_on_selector_all("table.grid", "els => els.filter(e => !e.closest('.scroll')).length")
    assert loose == 0
    # chart text, as drawn: the SVG font size times the chart's scale on screen
    sizes = page.eval_on_selector_all("figure svg", """els => els.map(svg => {
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const px = [...svg.querySelectorAll('text')].map(t => parseFloat(getComputedStyle(t).fontSize) * scale);
        return Math.min(...px); })""")
    assert sizes and min(sizes) >= 7.5, sizes
    page.close()
