"""One number format for every page, chart and table of the report (money in USD, durations in h/min).

Money: to the cent from $1 up ("$16.33", "$212.00", "$1,234.56"); under $1 to three significant figures
("$0.827", "$0.0579", "$0.0000200"), so two different small prices never print the same. Durations: under an hour
in whole minutes ("7 min"; under a minute "< 1 min"), from one hour up to three significant figures in hours
("2.15 h", "13.1 h", "131 h", "1,234 h"). Numbers without a unit: thousands separated, no exponent.
"""
from __future__ import annotations

import math
from typing import Any

CURRENCY_NOTE = "All amounts in USD, before tax."


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def money(x: Any) -> str:
    v = _finite(x)
    if v is None:
        return "n/a"
    sign = "-" if v < 0 else ""
    a = abs(v)
    if a == 0:
        return "$0.00"
    if a < 1:
        a = float(f"{a:.3g}")  # three significant figures (0.09996 -> 0.1 -> "$0.100")
        digits = 3 - 1 - math.floor(math.log10(a))
        text = f"{a:.{digits}f}"
        if float(text) >= 1:  # 0.9996 rounds up to a dollar: show cents
            text = f"{a:.2f}"
        return f"{sign}${text}"
    return f"{sign}${a:,.2f}"


def hours(h: Any) -> str:
    v = _finite(h)
    if v is None:
        return "n/a"
    if v < 0:
        return "-" + hours(-v)
    if v < 1:
        minutes = v * 60
        if minutes < 1:
            return "< 1 min" if v > 0 else "0 min"
        m = round(minutes)
        return f"{m} min" if m < 60 else "1.00 h"
    if v >= 1000:
        return f"{v:,.0f} h"
    v = float(f"{v:.3g}")  # three significant figures first, so 9.999 h reads "10.0 h", not "10.00 h"
    if v >= 1000:
        return f"{v:,.0f} h"
    digits = 2 - math.floor(math.log10(v))
    return f"{v:.{max(digits, 0)}f} h"


def number(v: Any, digits: int = 3) -> str:
    """A plain figure: ints with separators; floats to ``digits`` significant figures, never in exponent form."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    f = _finite(v)
    if f is None:
        return str(v) if not isinstance(v, float) else "n/a"
    if f == 0:
        return "0"
    a = abs(f)
    if a >= 10 ** digits:
        return f"{f:,.0f}"
    decimals = max(digits - 1 - math.floor(math.log10(a)), 0)
    text = f"{f:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def percent(fraction: Any) -> str:
    f = _finite(fraction)
    if f is None:
        return "n/a"
    return f"{f * 100:.0f}%" if abs(f) >= 0.01 or f == 0 else f"{f * 100:.2g}%"


def money_range(r: Any) -> str:
    """[low, expected, high] as "$X (low $L - high $H)"."""
    if not isinstance(r, (list, tuple)) or len(r) != 3:
        return "n/a"
    return f"{money(r[1])} (range {money(r[0])} to {money(r[2])})"


def hours_range(r: Any) -> str:
    if not isinstance(r, (list, tuple)) or len(r) != 3:
        return "n/a"
    return f"{hours(r[1])} (range {hours(r[0])} to {hours(r[2])})"
