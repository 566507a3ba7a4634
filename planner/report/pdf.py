"""report.pdf: the same HTML page laid out for print by WeasyPrint (the `report` extra).

WeasyPrint renders HTML+CSS (including our inline SVG) itself; it needs Pango from the system
(Debian: libpango-1.0-0 libpangoft2-1.0-0, and a font such as fonts-dejavu-core). It never fetches:
the page has no external resources, and the URL fetcher below refuses any that slip in.
"""
from __future__ import annotations


class ReportDependencyError(RuntimeError):
    """A renderer of the `report` extra is missing; the message says what to install."""


def _no_fetch(url: str, *args: object, **kwargs: object) -> dict:
    raise ValueError(f"report.pdf fetches nothing; refused {url}")


def html_to_pdf(html_text: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing from the system
        raise ReportDependencyError(
            f"report.pdf needs WeasyPrint and Pango ({exc}); install with pip install 'gpuplan[report]' "
            "and apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core") from None
    return weasyprint.HTML(string=html_text, url_fetcher=_no_fetch).write_pdf()
