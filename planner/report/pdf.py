"""report.pdf: the report page printed to A4.

Route (chosen for speed; see benchmarks/report_speed.py): headless Chromium's print-to-PDF, about 1 s of CPU for
the page, against 8-25 s for WeasyPrint on the same page on this project's 2-core machine (measured 2026-12-01).
Chromium is already the browser the report is tested in (Debian package `chromium`); WeasyPrint (the `report`
extra, needs Pango) is the fallback when no Chromium is found. Set GPUPLAN_PDF_ENGINE=weasyprint|chromium to pick
one, GPUPLAN_CHROMIUM to name the browser binary.

Either way nothing is fetched: the page has no external resources and carries a Content-Security-Policy that
forbids any; Chromium runs with a throwaway profile, no background networking and every host name unresolvable;
WeasyPrint's URL fetcher refuses everything.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 120


class ReportDependencyError(RuntimeError):
    """A renderer of the `report` extra is missing; the message says what to install."""


def _no_fetch(url: str, *args: object, **kwargs: object) -> dict:
    raise ValueError(f"report.pdf fetches nothing; refused {url}")


def find_chromium() -> str | None:
    named = os.environ.get("GPUPLAN_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumPrint:
    """A Chromium print-to-PDF running in the background (the report builds the CSV and XLSX meanwhile)."""

    def __init__(self, html_text: str, chromium: str) -> None:
        self.chromium = chromium
        self.tmp = tempfile.mkdtemp(prefix="gpuplan-pdf-")
        page = Path(self.tmp) / "report.html"
        self.out = Path(self.tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        args = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
                "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={Path(self.tmp) / 'profile'}",
                "--no-pdf-header-footer", f"--print-to-pdf={self.out}", page.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def result(self) -> bytes:
        try:
            try:
                _, err = self.proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ReportDependencyError(
                    f"report.pdf: {self.chromium} did not finish in {CHROMIUM_TIMEOUT_S} s") from None
            if self.proc.returncode != 0 or not self.out.is_file() or self.out.stat().st_size == 0:
                tail = (err or "").strip().splitlines()[-1:] or ["no output"]
                raise ReportDependencyError(f"report.pdf: {self.chromium} failed to print ({tail[0][:160]})")
            return self.out.read_bytes()
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the browser if it still runs and remove its files (on failure or Ctrl-C elsewhere)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def chromium_pdf(html_text: str, chromium: str) -> bytes:
    return ChromiumPrint(html_text, chromium).result()


def weasyprint_pdf(html_text: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing from the system
        raise ReportDependencyError(
            f"report.pdf needs Chromium (apt-get install chromium) or WeasyPrint and Pango ({exc}); install with "
            "pip install 'gpuplan[report]' and apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core"
        ) from None
    return weasyprint.HTML(string=html_text, url_fetcher=_no_fetch).write_pdf()


class _Done:
    def __init__(self, fn, html_text: str) -> None:
        self.fn, self.html_text = fn, html_text

    def result(self) -> bytes:
        return self.fn(self.html_text)

    def cancel(self) -> None:
        pass


def _chromium_or_none() -> str | None:
    engine = os.environ.get("GPUPLAN_PDF_ENGINE", "").strip().lower()
    chromium = None if engine == "weasyprint" else find_chromium()
    if chromium is None and engine == "chromium":
        raise ReportDependencyError("report.pdf: GPUPLAN_PDF_ENGINE=chromium but no Chromium found "
                                    "(apt-get install chromium, or set GPUPLAN_CHROMIUM)")
    return chromium


def start_pdf(html_text: str):  # -> ChromiumPrint | _Done, each with .result() -> bytes and .cancel()
    """Start printing ``html_text``; call .result() for the PDF bytes (Chromium prints in the background)."""
    chromium = _chromium_or_none()
    if chromium:
        return ChromiumPrint(html_text, chromium)
    return _Done(weasyprint_pdf, html_text)


def html_to_pdf(html_text: str) -> bytes:
    chromium = _chromium_or_none()
    return chromium_pdf(html_text, chromium) if chromium else weasyprint_pdf(html_text)
