"""Charts as inline SVG strings, drawn here from the plan document (no JS, no network, no plotting library).

Every string that reaches the SVG goes through ``html.escape``; each mark carries a ``<title>`` so a
reader can hover for the exact figure. Colours are the Okabe-Ito palette (readable with colour blindness).
"""
from __future__ import annotations

import math
from html import escape
from typing import Any, Iterable

from planner.report import fmt
from planner.report.rows import is_recommended

BLUE, ORANGE, GREEN, VERMILION, PURPLE, GREY, SKY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#888888", "#56B4E9")
BREAKDOWN_COLOURS = {
    "weights": BLUE, "adapter": GREEN, "gradients": ORANGE, "optimizer": PURPLE,
    "activations": SKY, "logits": VERMILION, "overhead": GREY,
}
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


money = fmt.money  # one format for every figure in the report (see planner/report/fmt.py)
hours_text = fmt.hours


class Axis:
    """Maps data values to pixels on a linear or log10 scale, and picks round tick values."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float, log: bool = False) -> None:
        if log:
            lo, hi = max(lo, 1e-9), max(hi, 1e-9)
            lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        elif hi <= lo:
            hi = lo + 1.0
        if log and hi <= lo:
            hi = lo * 10
        self.lo, self.hi, self.px_lo, self.px_hi, self.log = lo, hi, px_lo, px_hi, log

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log10(max(v, 1e-9)) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.px_lo + f * (self.px_hi - self.px_lo)

    def ticks(self) -> list[float]:
        if self.log:
            out, v = [], self.lo
            while v <= self.hi * 1.0001:
                out.append(v)
                v *= 10
            if len(out) <= 2:  # a single decade: add 2x and 5x
                out = sorted({t * m for t in out for m in (1, 2, 5) if t * m <= self.hi * 1.0001})
            return out
        span = self.hi - self.lo
        step = 10 ** math.floor(math.log10(span / 5))
        for m in (1, 2, 2.5, 5, 10):
            if span / (step * m) <= 6:
                step *= m
                break
        first = math.ceil(self.lo / step) * step
        out, v = [], first
        while v <= self.hi + step * 1e-6:
            out.append(round(v, 10))
            v += step
        return out


def nice_max(v: float) -> float:
    """Smallest 1/2/2.5/5 x 10^k at or above v (for a linear axis's upper end)."""
    if v <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if base * m >= v:
            return base * m
    return base * 10


def tick_label(v: float, unit: str = "") -> str:
    if unit == "$":
        return money(v) if v < 1 else (f"${v:,.0f}" if v == int(v) else f"${v:,.2f}")
    if v >= 1e6:
        return f"{v / 1e6:g}M{unit}"
    if v >= 1e4:
        return f"{v / 1e3:g}k{unit}"
    if unit == "%":
        return f"{v:.0f}%"
    if v >= 100 or v == int(v):
        return f"{v:,.0f}{unit}"
    return f"{v:g}{unit}"


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(label)}" {FONT} font-size="13">',
            f'<title>{escape(label)}</title>']


def _axes(parts: list[str], x: Axis, y: Axis, x_title: str, y_title: str, x_unit: str, y_unit: str,
          width: int, height: int) -> None:
    top, bottom = y.px_hi, y.px_lo
    left, right = x.px_lo, x.px_hi
    for t in y.ticks():
        py = y(t)
        parts.append(f'<line x1="{left:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{py + 4:.1f}" text-anchor="end">{escape(tick_label(t, y_unit))}</text>')
    for t in x.ticks():
        px = x(t)
        parts.append(f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{bottom:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{px:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{escape(tick_label(t, x_unit))}</text>')
    parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                 f'fill="none" stroke="#555"/>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="12">'
                 f'{escape(x_title)}</text>')
    parts.append(f'<text transform="translate(14 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle" '
                 f'font-size="12">{escape(y_title)}</text>')


def _legend(parts: list[str], items: Iterable[tuple[str, str]], x: float, y: float) -> None:
    for i, (marker, text) in enumerate(items):
        yy = y + i * 16
        parts.append(marker.format(x=x + 6, y=yy))
        parts.append(f'<text x="{x + 16:.1f}" y="{yy + 4:.1f}" font-size="10">{escape(text)}</text>')


def _swatch(colour: str) -> str:
    """A legend marker for a line series: a short thick bar (a template with {x} and {y})."""
    return f'<rect x="{{x}}" y="{{y}}" width="14" height="4" transform="translate(-7 -2)" fill="{colour}"/>'


def _option_label(o: dict[str, Any]) -> str:
    kind = "spot" if o.get("spot") else ("local" if o.get("target") == "local" else "on-demand")
    where = o.get("region") or ""
    figures = (f"{money(o.get('cost_usd'))}, {hours_text(o.get('hours'))}" if o.get("hours") else
               f"{money(o.get('usd_per_million_tokens'))}/M tokens, {o.get('tokens_per_s') or 0:,.0f} tokens/s")
    return f"{o.get('provider')} {o.get('instance_type')} {where} {o.get('gpus')}x{o.get('gpu')} {kind}: {figures}"


def timed(doc: dict[str, Any]) -> bool:
    """Whether the plan has hours and job costs (a dataset size was given) or only rates ($/M tokens, tokens/s)."""
    return any(o.get("fits") and o.get("hours") for o in doc.get("options") or [])


def cost_time_chart(doc: dict[str, Any], width: int = 720, height: int = 420) -> str:
    """Cost of the job against time to result for every option that fits, Pareto front joined by a line.
    Without a dataset size: USD per million tokens against tokens/s (the plan's Pareto front is over those)."""
    is_timed = timed(doc)
    xk, yk = ("hours", "cost_usd") if is_timed else ("tokens_per_s", "usd_per_million_tokens")
    # One point per offer at its cheapest region (the other regions of an offer take as long and cost more, so
    # they are never on the front), plus the recommendation: a sweep of 1,000 rows draws as ~150 points.
    from planner.report.groups import grouped_options

    shown = grouped_options(doc)
    rec_opt = next((o for o in doc.get("options") or [] if is_recommended(o, doc)), None)
    if rec_opt is not None:
        shown.append(rec_opt)
    pts = [o for o in shown
           if o.get("fits") and o.get(xk) is not None and o.get(yk) is not None and o[xk] > 0 and o[yk] > 0]
    if not pts:
        return ""
    label = ("Cost of the job against time to result, one point per offer at its cheapest region; Pareto front "
             "marked" if is_timed else
             "Cost per million tokens against throughput, one point per offer at its cheapest region; Pareto front "
             "marked")
    xs = [o[xk] for o in pts]
    ys = [o[yk] for o in pts]
    log_x = max(xs) / min(xs) > 20
    log_y = max(ys) / min(ys) > 20
    left, right, top, bottom = 78, width - 170, 16, height - 44
    x = Axis(0 if not log_x else min(xs), nice_max(max(xs)) if not log_x else max(xs), left, right, log=log_x)
    y = Axis(0 if not log_y else min(ys), nice_max(max(ys)) if not log_y else max(ys), bottom, top, log=log_y)
    parts = _svg_open(width, height, label)
    log_note = ", log scale)"
    if is_timed:
        _axes(parts, x, y, "time to result (hours" + (log_note if log_x else ")"),
              "cost of the job (USD" + (log_note if log_y else ")"), " h", "$", width, height)
    else:
        _axes(parts, x, y, "throughput (tokens/s, all GPUs" + (log_note if log_x else ")"),
              "USD per million tokens" + (" (log scale)" if log_y else ""), "", "$", width, height)
    front = sorted((o for o in pts if o.get("pareto")), key=lambda o: o[xk])
    if len(front) > 1:
        path = " ".join(f"{x(o[xk]):.1f},{y(o[yk]):.1f}" for o in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{VERMILION}" stroke-width="1.5" '
                     f'stroke-dasharray="5 3"/>')
    rec = None
    for o in sorted(pts, key=lambda o: bool(o.get("pareto"))):  # front drawn last, on top
        cx, cy = x(o[xk]), y(o[yk])
        colour = GREEN if o.get("target") == "local" else (ORANGE if o.get("spot") else BLUE)
        flag = o.get("price_flag") or ("stale" if ((doc.get("prices") or {}).get(o.get("provider")) or {}).get("stale")
                                       else None)
        flagged = flag in ("stale", "outlier")
        title = f"<title>{escape(_option_label(o))}{' (price ' + flag + ')' if flagged else ''}</title>"
        if flagged:
            parts.append(f'<path d="M{cx - 6:.1f},{cy - 6:.1f}L{cx + 6:.1f},{cy + 6:.1f}M{cx - 6:.1f},{cy + 6:.1f}'
                         f'L{cx + 6:.1f},{cy - 6:.1f}" stroke="#000" stroke-width="1.5"/>')
        if o.get("pareto"):
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}" stroke="{VERMILION}" '
                         f'stroke-width="2">{title}</circle>')
        else:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="{colour}" fill-opacity="0.55">'
                         f'{title}</circle>')
        if is_recommended(o, doc):
            rec = (cx, cy, o)
    if rec:
        cx, cy, o = rec
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="none" stroke="#000" stroke-width="2"/>')
        parts.append(f'<text x="{min(cx + 13, right - 4):.1f}" y="{cy - 8:.1f}" font-weight="bold" '
                     f'text-anchor="{"start" if cx + 120 < right else "end"}">recommended</text>')
    _legend(parts, [
        (f'<circle cx="{{x}}" cy="{{y}}" r="4" fill="{BLUE}"/>', "cloud on-demand"),
        (f'<circle cx="{{x}}" cy="{{y}}" r="4" fill="{ORANGE}"/>', "cloud spot"),
        (f'<circle cx="{{x}}" cy="{{y}}" r="4" fill="{GREEN}"/>', "local"),
        (f'<circle cx="{{x}}" cy="{{y}}" r="5" fill="#fff" stroke="{VERMILION}" stroke-width="2"/>', "Pareto front"),
        ('<circle cx="{x}" cy="{y}" r="7" fill="none" stroke="#000" stroke-width="2"/>', "recommended"),
        ('<path d="M{x},{y}m-5,-5l10,10m-10,0l10,-10" stroke="#000" stroke-width="1.5"/>', "price flagged"),
    ], right + 14, top + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def reference_prices(doc: dict[str, Any]) -> list[tuple[str, float]]:
    """Cloud $/GPU-hour lines for the local-versus-cloud chart: the recommended cloud option's, and each
    like-for-like price a profile's break-even was computed against (from the document)."""
    out: list[tuple[str, float]] = []
    rec = doc.get("recommendation") or {}
    if rec.get("target") == "cloud" and rec.get("usd_per_gpu_hour"):
        out.append(("recommended", float(rec["usd_per_gpu_hour"])))
    for p in doc.get("local_profiles") or []:
        ref = p.get("break_even_against_usd_per_gpu_hour")
        if ref and all(abs(ref - v) > 1e-9 for _, v in out):
            out.append((f"{p.get('gpu')} on-demand", float(ref)))
    return out


def local_vs_cloud_chart(doc: dict[str, Any], width: int = 720, height: int = 400) -> str:
    """Each local profile's cost per GPU-hour against utilisation, with cloud prices as horizontal lines and
    each profile's break-even utilisation (from the document) marked on the line it was computed against."""
    profiles = [p for p in doc.get("local_profiles") or [] if p.get("curve")]
    if not profiles:
        return ""
    refs = reference_prices(doc)
    ys = [pt["usd_per_gpu_hour"] for p in profiles for pt in p["curve"] if pt.get("usd_per_gpu_hour")]
    ys += [v for _, v in refs]
    anchor = max([v for _, v in refs] + [p.get("usd_per_gpu_hour") or 0 for p in profiles]) or max(ys)
    y_top = min(nice_max(max(ys)), nice_max(anchor * 2.5))  # keep the low-utilisation blow-up from flattening all
    left, right, top, bottom = 78, width - 230, 16, height - 44
    x = Axis(0, 100, left, right)
    y = Axis(0, y_top, bottom, top)
    label = "Local cost per GPU-hour against utilisation, against cloud prices; break-even marked"
    parts = _svg_open(width, height, label)
    parts.append(f'<defs><clipPath id="lvc-clip"><rect x="{left}" y="{top}" width="{right - left}" '
                 f'height="{bottom - top}"/></clipPath></defs>')
    _axes(parts, x, y, "utilisation of the local hardware (% of the year in use)", "USD per GPU-hour", "%", "$",
          width, height)
    legend = []
    for (name, price), colour in zip(refs, (BLUE, ORANGE, SKY, GREY)):
        cy = y(price)
        if cy < top:
            continue
        dash = "" if name == "recommended" else ' stroke-dasharray="8 4"'
        parts.append(f'<line x1="{left}" y1="{cy:.1f}" x2="{right}" y2="{cy:.1f}" stroke="{colour}" '
                     f'stroke-width="2"{dash}><title>{escape(name)} {money(price)}/GPU-h</title></line>')
        legend.append((_swatch(colour), f"cloud {name} {money(price)}/GPU-h"))
    colours = [GREEN, PURPLE, VERMILION, GREY]
    for i, p in enumerate(profiles):
        colour = colours[i % len(colours)]
        pts = [(_as_pct(pt["utilisation"]), pt["usd_per_gpu_hour"])
               for pt in p["curve"] if pt.get("usd_per_gpu_hour") is not None]
        path = " ".join(f"{x(u):.1f},{y(c):.1f}" for u, c in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'clip-path="url(#lvc-clip)"/>')
        legend.append((_swatch(colour), f"local: {p.get('name')}"))
        util = p.get("utilisation")
        if util is not None and p.get("usd_per_gpu_hour") is not None:
            u = _as_pct(util)
            parts.append(f'<circle cx="{x(u):.1f}" cy="{y(p["usd_per_gpu_hour"]):.1f}" r="4.5" fill="{colour}">'
                         f'<title>{escape(str(p.get("name")))}: {money(p["usd_per_gpu_hour"])}/GPU-h at {u:.0f}% '
                         f'utilisation</title></circle>')
        be, ref = p.get("break_even_utilisation"), p.get("break_even_against_usd_per_gpu_hour")
        if be is None or not ref:
            continue
        u = _as_pct(be)
        by = y(ref)
        if u > 100:
            parts.append(f'<text x="{right - 4}" y="{by - 6:.1f}" text-anchor="end" fill="{colour}" '
                         f'font-weight="bold">break-even above 100% ({u:.0f}%)</text>')
        elif u > 0:
            bx = x(u)
            parts.append(f'<line x1="{bx:.1f}" y1="{by:.1f}" x2="{bx:.1f}" y2="{bottom}" stroke="{colour}" '
                         f'stroke-dasharray="4 3"/>')
            parts.append(f'<rect x="{bx - 5:.1f}" y="{by - 5:.1f}" width="10" height="10" fill="#fff" '
                         f'stroke="{colour}" stroke-width="2"><title>break-even {u:.0f}%</title></rect>')
            parts.append(f'<text x="{bx + 7:.1f}" y="{by - 8:.1f}" font-weight="bold">break-even {u:.0f}%</text>')
    legend.append((f'<circle cx="{{x}}" cy="{{y}}" r="4.5" fill="{GREY}"/>', "assumed utilisation"))
    legend.append((f'<rect x="{{x}}" y="{{y}}" width="10" height="10" transform="translate(-5 -5)" fill="#fff" '
                   f'stroke="{GREY}" stroke-width="2"/>', "break-even"))
    _legend(parts, legend, right + 14, top + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def _as_pct(u: Any) -> float:
    """Utilisation as a percentage (the document gives fractions 0..1; a break-even may exceed 1)."""
    return float(u) * 100


def tornado_chart(doc: dict[str, Any], width: int = 720, row_h: int = 30, *, local: bool = False) -> str:
    """How the recommended option's cost moves when each assumption goes to its low or high value; with
    ``local``, the rows about the local alternative (a cloud recommendation's local cost drivers)."""
    rows = [r for r in doc.get("sensitivity") or []
            if isinstance(r.get("cost_low_usd"), (int, float)) and isinstance(r.get("cost_high_usd"), (int, float))
            and bool(r.get("alternative")) == local]
    rec = doc.get("recommendation") or {}
    # all-in (with start-up) where the plan has it: the rows' costs are all-in too (planner.decide.sensitivity)
    base = rec.get("cost_with_startup_usd") if isinstance(rec.get("cost_with_startup_usd"), (int, float)) \
        else rec.get("cost_usd")
    if local and rows:
        base = rows[0].get("base_cost_usd")
    if not rows or not isinstance(base, (int, float)):
        return ""
    rows = sorted(rows, key=lambda r: -abs(r["cost_high_usd"] - r["cost_low_usd"]))
    height = 48 + row_h * len(rows) + 30
    left, right, top = 250, width - 80, 30
    lo = min([base] + [min(r["cost_low_usd"], r["cost_high_usd"]) for r in rows])
    hi = max([base] + [max(r["cost_low_usd"], r["cost_high_usd"]) for r in rows])
    pad = (hi - lo) * 0.2 or base * 0.1 or 1.0  # room for the value labels at the bar ends
    x = Axis(max(0.0, lo - pad), hi + pad, left, right)
    bottom = top + row_h * len(rows)
    label = ("Sensitivity of the local alternative's cost to each assumption (tornado chart)" if local else
             "Sensitivity of the recommended option's cost to each assumption (tornado chart)")
    parts = _svg_open(width, height, label)
    for t in x.ticks():
        px = x(t)
        parts.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(tick_label(t, "$"))}</text>')
    for i, r in enumerate(rows):
        yy = top + i * row_h + 5
        c_lo, c_hi = r["cost_low_usd"], r["cost_high_usd"]
        name = str(r.get("assumption"))
        unit = str(r.get("unit") or "")
        short = name if len(name) <= 36 else name[:35] + "…"
        parts.append(f'<text x="{left - 8}" y="{yy + row_h / 2:.1f}" text-anchor="end">{escape(short)}'
                     f'<title>{escape(name)}</title></text>')
        row_base = r.get("base_cost_usd") if isinstance(r.get("base_cost_usd"), (int, float)) else base
        for value, cost, colour, tag in ((r.get("low"), c_lo, SKY, "low"), (r.get("high"), c_hi, ORANGE, "high")):
            x0, x1 = sorted((x(row_base), x(cost)))
            t = r.get(f"time_{tag}_hours")
            when = f", {hours_text(t)} to result" if isinstance(t, (int, float)) else ""
            parts.append(f'<rect x="{x0:.1f}" y="{yy:.1f}" width="{max(x1 - x0, 1):.1f}" height="{row_h - 10}" '
                         f'fill="{colour}"><title>{escape(name)} {tag} = {escape(_fmt(value))} {escape(unit)}: '
                         f'{money(cost)}{escape(when)}</title></rect>')
            anchor_x = x1 + 4 if cost >= row_base else x0 - 4
            parts.append(f'<text x="{anchor_x:.1f}" y="{yy + row_h / 2 - 1:.1f}" font-size="11" '
                         f'text-anchor="{"start" if cost >= row_base else "end"}">{escape(_fmt(value))}</text>')
    bx = x(base)
    parts.append(f'<line x1="{bx:.1f}" y1="{top - 6}" x2="{bx:.1f}" y2="{bottom}" stroke="#000" stroke-width="1.5"/>')
    parts.append(f'<text x="{bx:.1f}" y="{top - 10}" text-anchor="middle" font-weight="bold">base {money(base)}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="12">'
                 f'all-in cost of the job (USD, with start-up); bars labelled with the assumption\'s low / high value'
                 f'</text>')
    _legend(parts, [(f'<rect x="{{x}}" y="{{y}}" width="10" height="10" transform="translate(-5 -5)" fill="{SKY}"/>',
                     "low value"),
                    (f'<rect x="{{x}}" y="{{y}}" width="10" height="10" transform="translate(-5 -5)" fill="{ORANGE}"/>',
                     "high value")], 8, 10)
    parts.append("</svg>")
    return "\n".join(parts)


def memory_chart(plan: dict[str, Any] | None, width: int = 720, height: int = 126) -> str:
    """Per-GPU memory of the chosen setup as one stacked bar, against the GPU's capacity."""
    if not plan or not plan.get("memory"):
        return ""
    mem = plan["memory"]
    parts_gib = [(k, float(v)) for k, v in (mem.get("breakdown_gib") or {}).items() if v]
    capacity = float(mem.get("capacity_gib") or 0)
    reserved = float(mem.get("peak_reserved_gib") or 0)
    total = sum(v for _, v in parts_gib)
    scale_max = max(capacity, reserved, total) * 1.05 or 1.0
    left, right = 20, width - 20
    x = Axis(0, scale_max, left, right)
    label = "Per-GPU memory of the chosen setup by component, against GPU capacity"
    svg = _svg_open(width, height, label)
    cursor = 0.0
    for name, v in parts_gib:
        x0, x1 = x(cursor), x(cursor + v)
        colour = BREAKDOWN_COLOURS.get(name, GREY)
        svg.append(f'<rect x="{x0:.1f}" y="20" width="{max(x1 - x0, 0.5):.1f}" height="34" fill="{colour}">'
                   f'<title>{escape(name)}: {v:.2f} GiB</title></rect>')
        if x1 - x0 > 48:
            svg.append(f'<text x="{(x0 + x1) / 2:.1f}" y="41" text-anchor="middle" fill="#fff" font-size="10">'
                       f'{escape(name)}</text>')
        cursor += v
    if reserved:
        rx = x(reserved)
        svg.append(f'<line x1="{rx:.1f}" y1="14" x2="{rx:.1f}" y2="60" stroke="#000" stroke-dasharray="3 2"/>')
        svg.append(f'<text x="{rx:.1f}" y="72" text-anchor="middle" font-size="10">reserved {reserved:.1f}</text>')
    if capacity:
        cx = x(capacity)
        svg.append(f'<line x1="{cx:.1f}" y1="10" x2="{cx:.1f}" y2="62" stroke="{VERMILION}" stroke-width="2.5"/>')
        svg.append(f'<text x="{cx:.1f}" y="9" text-anchor="end" font-size="10" fill="{VERMILION}">'
                   f'capacity {capacity:.1f} GiB</text>')
    lx, ly = left, 90
    for name, v in parts_gib:
        colour = BREAKDOWN_COLOURS.get(name, GREY)
        text = f"{name} {v:.2f} GiB"
        step = 14 + 6.2 * len(text) + 12
        if lx + step > right:
            lx, ly = left, ly + 16
        svg.append(f'<rect x="{lx:.1f}" y="{ly}" width="10" height="10" fill="{colour}"/>')
        svg.append(f'<text x="{lx + 14:.1f}" y="{ly + 9}" font-size="10">{escape(text)}</text>')
        lx += step
    svg.append("</svg>")
    return "\n".join(svg)


def _fmt(v: Any) -> str:
    return "" if v is None else fmt.number(v)


def cumulative_chart(doc: dict[str, Any], width: int = 720, height: int = 400) -> str:
    """Cumulative cost of each scenario of the plan's `periods` by month (the plan's own `cumulative_usd`
    lists), with the first month a local or hybrid line drops under the cloud line marked as the crossover."""
    periods = doc.get("periods") or {}
    scenarios = {k: v for k, v in (periods.get("scenarios") or {}).items()
                 if isinstance(v, dict) and isinstance(v.get("cumulative_usd"), list) and len(v["cumulative_usd"]) > 1}
    if not scenarios:
        return ""
    months = max(len(v["cumulative_usd"]) for v in scenarios.values()) - 1
    top_v = max(max(v["cumulative_usd"]) for v in scenarios.values())
    left, right, top, bottom = 84, width - 150, 16, height - 44
    x = Axis(0, max(months, 1), left, right)
    y = Axis(0, nice_max(top_v), bottom, top)
    label = "Cumulative cost by month for cloud, local and hybrid; crossover marked"
    parts = _svg_open(width, height, label)
    _axes(parts, x, y, "month", "cumulative cost (USD)", "", "$", width, height)
    colours = {"cloud": BLUE, "local": GREEN, "hybrid": PURPLE}
    legend = []
    for name, s in scenarios.items():
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s["cumulative_usd"]))
        colour = colours.get(name, GREY)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.5">'
                     f'<title>{escape(name)}: {money(s["cumulative_usd"][-1])} after {len(s["cumulative_usd"]) - 1} '
                     f'months</title></polyline>')
        legend.append((_swatch(colour), name))
    cloud = (scenarios.get("cloud") or {}).get("cumulative_usd")
    for name in ("local", "hybrid"):
        other = (scenarios.get(name) or {}).get("cumulative_usd")
        if not cloud or not other:
            continue
        m = crossover_month(cloud, other)
        if m is not None:
            cx, cy = x(m), y(other[m])
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="none" stroke="#000" stroke-width="2"/>')
            parts.append(f'<text x="{cx:.1f}" y="{cy - 10:.1f}" text-anchor="middle" font-weight="bold">'
                         f'{escape(name)} cheaper from month {m}</text>')
    _legend(parts, legend, right + 14, top + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def crossover_month(cloud: list[float], other: list[float]) -> int | None:
    """First month from which ``other`` stays at or under ``cloud`` to the end (None if it never does)."""
    n = min(len(cloud), len(other))
    found = None
    for i in range(n - 1, -1, -1):
        if other[i] <= cloud[i]:
            found = i
        else:
            break
    return found
