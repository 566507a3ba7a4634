"""report.xlsx: a live workbook finance can change and recalculate (Excel, LibreOffice Calc).

Sheets:
- Summary: the decision and the period totals as formulas over the Assumptions sheet and the Local TCO sheet,
  each beside the plan document's own figure (which the formula equals until an assumption is changed). The
  period totals use planner.decide.periods' definitions (see _period_rows): the cloud run at its all-in cost
  (price x billed hours of training + start-up, the provider's billing granularity and minimum from the plan's
  assumptions), local power for the runs over their time to result (all the machine's GPUs, as the plan counts
  it) plus upkeep, capex in month 0 (none when already owned), rounded to 4 decimals as the plan rounds them.
- Options: every per-region option (the plan document's `options`), autofilter, frozen header, currency and
  hour formats, the recommended row highlighted, flagged prices marked.
- Local TCO: per local profile, the amortisation (annuity on capex net of the residual's present value),
  upkeep, power and the cost per GPU-hour and per run, as formulas (the same model as pricing.local).
- Sensitivity: the plan's sensitivity rows.
- Assumptions: the inputs, finance first, sources in words; Estimator constants: the engineering appendix.

Formulas follow pricing.local exactly (HOURS_PER_YEAR = 8760, 730 h a month); nothing here plans. A cell that
the plan gives as text stays text and is defused (planner.report.safe) so it can never run as a formula.
"""
from __future__ import annotations

import io
import re
from typing import Any

from planner.report.decision import describe
from planner.report.fmt import CURRENCY_NOTE
from planner.report.groups import price_flag
from planner.report.pdf import ReportDependencyError
from planner.report.rows import (OPTION_COLUMNS, SENSITIVITY_COLUMNS, is_recommended, sensitivity_table,
                                 split_assumptions)
from planner.report.safe import defuse, text_cell

USD = '"$"#,##0.00'
USD_SMALL = '"$"#,##0.0000'
HOURS = '0.00" h"'
PCT = "0.0%"
PLAIN = "0.####"
MONEY_COLUMNS = {"usd_per_hour", "usd_per_gpu_hour", "cost_usd", "cost_with_startup_usd"}
SMALL_MONEY_COLUMNS = {"usd_per_million_tokens"}
HOUR_COLUMNS = {"hours", "startup_hours", "time_to_result_hours"}
PROFILE_FIELDS = (  # pricing.local.LocalProfile fields the cost model reads, in the order the sheet shows them
    "gpu_count", "purchase_price_usd", "other_capex_usd", "lifetime_years", "residual_value_pct",
    "cost_of_capital_pct", "maintenance_pct_per_year", "gpu_power_w", "host_power_w", "pue",
    "electricity_usd_per_kwh", "utilisation", "already_owned")
PROFILE_LABELS = {
    "gpu_count": "GPUs in the machine", "purchase_price_usd": "hardware price (GPUs)",
    "other_capex_usd": "other capex (host, network)", "lifetime_years": "lifetime",
    "residual_value_pct": "residual value at end of life", "cost_of_capital_pct": "cost of capital",
    "maintenance_pct_per_year": "upkeep per year (of capex)", "gpu_power_w": "power per GPU under load",
    "host_power_w": "host power", "pue": "PUE (cooling overhead)", "electricity_usd_per_kwh": "electricity price",
    "utilisation": "utilisation (busy share of the year)", "already_owned": "already owned (1 = yes)",
}
_DERIVED = re.compile(r"([0-9.]+) runs/month x ([0-9.]+) h \+ ([0-9.]+) h other use")


def option_columns(doc: dict[str, Any]) -> list[str]:
    """OPTION_COLUMNS, then any other key the plan's options carry (newer plans add some), first seen first.

    A key whose value is a dict (`config`, `startup`) is flattened into one column per entry, named
    "<key>.<entry>" (e.g. config.batch_size, startup.provision), entries first seen first; an option without an
    entry leaves its cell empty. A list (`changed`, `notes`) stays one column, its items joined with "; "."""
    options = [o for o in doc.get("options") or [] if isinstance(o, dict)]
    nested = {k for o in options for k, v in o.items() if isinstance(v, dict) and k not in OPTION_COLUMNS}
    cols = list(OPTION_COLUMNS)
    seen = set(cols)
    for o in options:
        for k, v in o.items():
            for name in ([f"{k}.{sub}" for sub in v] if isinstance(v, dict) else []) if k in nested else [k]:
                if name not in seen:
                    seen.add(name)
                    cols.append(name)
    return cols


def option_value(o: dict[str, Any], col: str) -> Any:
    """The option's value for a column of option_columns: a flattened "<key>.<entry>" reads the dict's entry."""
    if col in o and not isinstance(o[col], dict) or "." not in col:
        return o.get(col)
    key, sub = col.split(".", 1)
    nested = o.get(key)
    return nested.get(sub) if isinstance(nested, dict) else None


def option_cell(o: dict[str, Any], col: str, doc: dict[str, Any]) -> Any:
    if col == "recommended":
        return is_recommended(o, doc)
    if col == "notes":
        notes = o.get("notes") or []
        return defuse("; ".join(str(n) for n in notes) if isinstance(notes, list) else str(notes))
    return text_cell(option_value(o, col))


def chosen_profile(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The local profile the Summary compares with: the periods' profile, else the local alternative's, else the
    one with the cheapest job."""
    profiles = [p for p in doc.get("local_profiles") or [] if isinstance(p, dict)]
    if not profiles:
        return None
    wanted = (doc.get("periods") or {}).get("local_profile") or ((doc.get("alternatives") or {}).get("local") or {}
                                                                  ).get("instance_type")
    for p in profiles:
        if p.get("name") == wanted:
            return p
    local_costs = {o.get("instance_type"): o.get("cost_usd") for o in doc.get("options") or []
                   if o.get("target") == "local" and isinstance(o.get("cost_usd"), (int, float))}
    return min(profiles, key=lambda p: local_costs.get(p.get("name"), float("inf")))


def _profile_values(p: dict[str, Any]) -> dict[str, tuple[Any, str, str]]:
    """field -> (value, unit, source) from a local_profiles entry's assumption rows."""
    name = str(p.get("name"))
    out: dict[str, tuple[Any, str, str]] = {}
    for a in p.get("assumptions") or []:
        label = str(a.get("name"))
        if label.startswith(f"{name}: "):
            out[label[len(name) + 2:]] = (a.get("value"), str(a.get("unit") or ""), str(a.get("source") or ""))
    if p.get("utilisation") is not None and "utilisation" in out:
        v, unit, src = out["utilisation"]
        out["utilisation"] = (p["utilisation"], unit, src)
    return out


def period_cloud_option(doc: dict[str, Any]) -> dict[str, Any]:
    """The option the Summary prices: the recommendation, except where the plan's period totals compare a
    different cloud option (a local recommendation): then that one, found as planner.plan picks it (the cheapest
    cloud option by rank_cost; the plan names it only in words, `periods.cloud_option`)."""
    rec = doc.get("recommendation") or {}
    periods = doc.get("periods") or {}
    if not periods.get("scenarios", {}).get("cloud") or rec.get("target") == "cloud":
        return rec
    ranked = [o for o in doc.get("options") or [] if o.get("target") == "cloud" and o.get("rank_cost")]
    return min(ranked, key=lambda o: o["rank_cost"]) if ranked else rec


def _billing_row(doc: dict[str, Any], provider: str, what: str) -> dict[str, Any] | None:
    return next((a for a in doc.get("assumptions") or [] if a.get("name") == f"billing, {provider}: {what}"), None)


def billing_terms(doc: dict[str, Any], provider: str) -> tuple[float | None, float | None]:
    """(granularity s, minimum s) of the provider's billing, as the plan states them in its assumptions
    ("billing, <provider>: granularity" / "... minimum per run"); None where the plan does not say."""
    out = []
    for what in ("granularity", "minimum per run"):
        a = _billing_row(doc, provider, what)
        v = a.get("value") if a else None
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
    return out[0], out[1]


def billing_source(doc: dict[str, Any], provider: str, what: str) -> str:
    a = _billing_row(doc, provider, what) or {}
    return str(a.get("source") or "the plan's billing assumptions")


def _local_option(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((o for o in doc.get("options") or [] if o.get("target") == "local" and o.get("instance_type") == name),
                None)


class _Sheet:
    """Appends rows to an openpyxl worksheet and remembers where named inputs landed (for formulas)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.row = 0

    def add(self, values: list[Any], fmt: dict[int, str] | None = None, bold: bool = False) -> int:
        self.row += 1
        from openpyxl.styles import Font

        for i, v in enumerate(values, start=1):
            cell = self.ws.cell(row=self.row, column=i, value=v)
            if fmt and i in fmt:
                cell.number_format = fmt[i]
            if bold:
                cell.font = Font(bold=True)
        return self.row


def _period_rows(s: "_Sheet", name: str, plan: dict[str, Any], capex: str, month_raw: str, ref: dict[str, str],
                 r_runs: int, cloud: dict[str, Any] | None) -> dict[str, Any]:
    """One scenario's period totals as formulas, defined as planner.decide.periods defines them: per month the
    running cost (`month_raw`, unrounded), capex in month 0, cumulative = capex + month x running, every figure
    rounded to 4 decimals as the plan rounds it; per run = the horizon total over all its runs; payback = the
    first month from 1 whose cumulative is at or below the cloud's (both linear in the month, so the count of
    months where it holds gives the first one)."""
    h = ref["horizon"]
    rows: dict[str, Any] = {}
    rows["capex"] = s.add([f"{name} capex up front", f"={capex}", "USD", plan.get("capex_usd")], {2: USD, 4: USD})
    cx = f"B{rows['capex']}"
    rows["running"] = s.add([f"{name} running cost per month", f"=ROUND({month_raw},4)", "USD",
                             plan.get("running_per_month_usd")], {2: USD, 4: USD})
    rows["month"] = s.add([f"{name} per month", f"=ROUND({month_raw},4)", "USD", plan.get("per_month_usd")],
                          {2: USD, 4: USD})
    rows["year"] = s.add([f"{name} per year", f"=ROUND(12*({month_raw}),4)", "USD", plan.get("per_year_usd")],
                         {2: USD, 4: USD})
    rows["horizon"] = s.add([f"{name} over the horizon (capex + running)", f"=ROUND({cx}+{h}*({month_raw}),4)",
                             "USD", plan.get("horizon_usd")], {2: USD, 4: USD})
    rows["per_run"] = s.add([f"{name} per run over the horizon", f"=ROUND(B{rows['horizon']}/(B{r_runs}*{h}),4)",
                             "USD", plan.get("per_run_usd")], {2: USD, 4: USD})
    if cloud is not None:
        months = f'ROW(INDIRECT("1:"&{h}))'
        count = (f"SUMPRODUCT(--(ROUND({cx}+{months}*({month_raw}),4)<=ROUND({months}*({cloud['month_raw']}),4)))")
        rows["payback"] = s.add([f"{name} payback month against cloud", f'=IF({count}=0,"never",{h}-{count}+1)',
                                 "month", plan.get("payback_month")])
    rows["month_raw"] = month_raw  # the unrounded expression, for the payback of the other scenarios
    return rows


def _widths(ws: Any, widths: dict[str, float]) -> None:
    for col, w in widths.items():
        ws.column_dimensions[col].width = w


def _import_openpyxl_without_numpy() -> None:
    """openpyxl imports numpy only to accept numpy scalars as numbers (openpyxl.compat.numbers); that costs about
    0.35 s of a 2 s report. Our cells are plain Python values, so when numpy is not loaded yet, openpyxl is
    imported with numpy hidden (measured with python -X importtime, 2026-12-01)."""
    import sys

    if "openpyxl" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes `import numpy` raise ImportError
    try:
        import openpyxl  # noqa: F401
    finally:
        del sys.modules["numpy"]


def report_xlsx(doc: dict[str, Any]) -> bytes:
    _import_openpyxl_without_numpy()
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill
        from openpyxl.utils import get_column_letter
    except ImportError as exc:
        raise ReportDependencyError(f"report.xlsx needs openpyxl ({exc}); pip install 'gpuplan[report]'") from None

    wb = Workbook()
    summary = _Sheet(wb.active)
    summary.ws.title = "Summary"
    options_ws = wb.create_sheet("Options")
    tco = _Sheet(wb.create_sheet("Local TCO"))
    sens = _Sheet(wb.create_sheet("Sensitivity"))
    assum = _Sheet(wb.create_sheet("Assumptions"))
    eng = _Sheet(wb.create_sheet("Estimator constants"))
    bold = Font(bold=True)
    rec = doc.get("recommendation") or {}
    periods = doc.get("periods") or {}

    # -- Assumptions: inputs first (the cells the formulas read), then the rest of the finance assumptions --
    assum.add(["assumption", "value", "unit", "source", "applies to"], bold=True)
    ref: dict[str, str] = {}  # input name -> absolute reference

    def put(key: str, name: str, value: Any, unit: str, source: str, scope: str, fmt: str | None = None) -> str:
        r = assum.add([defuse(name), text_cell(value), defuse(unit), defuse(source), defuse(scope)],
                      {2: fmt} if fmt else None)
        ref[key] = f"Assumptions!$B${r}"
        return ref[key]

    runs_given = periods.get("runs_per_month")
    derived = {}
    for p in doc.get("local_profiles") or []:
        src = _profile_values(p).get("utilisation", (None, "", ""))[2]
        m = _DERIVED.search(src)
        if m:
            derived[p.get("name")] = m
    if runs_given is None and derived:
        runs_given = float(next(iter(derived.values())).group(1))
    other_use = float(next(iter(derived.values())).group(3)) if derived else 0.0
    put("runs", "runs per month", runs_given if runs_given is not None else 1, "runs",
        "the workload given to the plan (--runs-per-month)" if runs_given is not None
        else "not given to the plan: 1 run a month as a placeholder; change it", "workload")
    put("horizon", "horizon", periods.get("horizon_months") or 36, "months",
        "planning horizon (--horizon-months; default 36 = a 3-year depreciation schedule)", "workload")
    put("other_use", "other busy hours on the local GPUs", other_use, "h/month",
        "the workload given to the plan (--other-use-hours)", "workload")
    cloud_opt = period_cloud_option(doc)
    if cloud_opt:
        o = cloud_opt
        what = "the recommended option" if cloud_opt is rec else "the cloud option compared"
        put("price", f"price of {what}", o.get("usd_per_hour"), "USD/h",
            f"{o.get('provider')} price list ({o.get('source') or 'catalog'}, as of {o.get('as_of') or 'n/a'})",
            describe(o), USD_SMALL)
        put("gpus", f"GPUs of {what}", o.get("gpus"), "GPUs", "the plan's offer", describe(o))
        put("hours", f"training time of {what}", o.get("hours"), "h",
            "the plan's estimate (throughput model; see the Estimator constants sheet)", describe(o), PLAIN)
        startup = o.get("startup_hours")
        put("startup", "start-up time (provisioning, setup, model download)", startup if startup is not None else 0,
            "h", "the plan's start-up estimate" if startup is not None else "not in this plan (0 assumed)",
            describe(o), PLAIN)
        provider = str(o.get("provider"))
        gran, minimum = (None, None) if o.get("target") == "local" else billing_terms(doc, provider)
        put("billing_step", f"billing granularity of {what}", gran if gran is not None else 0,
            "s", billing_source(doc, provider, "granularity") if gran is not None
            else "not in this plan (billed by the exact hour fraction)", describe(o))
        put("billing_min", f"billing minimum per run of {what}", minimum if minimum is not None else 0,
            "s", billing_source(doc, provider, "minimum per run") if minimum is not None
            else "not in this plan (no minimum)", describe(o))

    # local profiles: one block of inputs each
    profiles = [p for p in doc.get("local_profiles") or [] if isinstance(p, dict)]
    for p in profiles:
        name = str(p.get("name"))
        values = _profile_values(p)
        opt = _local_option(doc, name) or {}
        for f in PROFILE_FIELDS:
            v, unit, src = values.get(f, (p.get(f) if f != "already_owned" else p.get("already_owned"), "", ""))
            if f == "already_owned":
                v = 1 if v else 0
            if f == "utilisation" and name in derived:
                continue  # a formula in Local TCO: it follows runs per month
            put(f"{name}:{f}", f"{name}: {PROFILE_LABELS[f]}", v, unit, src or "local profile", f"local: {name}")
        put(f"{name}:job_hours", f"{name}: training time of the job", opt.get("hours"), "h",
            "the plan's estimate on this machine", f"local: {name}", PLAIN)
        put(f"{name}:job_gpus", f"{name}: GPUs the job uses", opt.get("gpus") or p.get("gpu_count"), "GPUs",
            "the plan's local option", f"local: {name}")
        ttr = opt.get("time_to_result_hours")
        put(f"{name}:job_ttr", f"{name}: time to result of the job (training + start-up)",
            ttr if ttr is not None else opt.get("hours"), "h", "the plan's estimate on this machine, with its "
            "start-up (the period totals count this time)", f"local: {name}", PLAIN)

    finance, engineering = split_assumptions(doc)
    for a in finance:
        if str(a.get("scope", "")).startswith("local:"):
            continue  # the inputs above
        assum.add([defuse(str(a.get("name"))), text_cell(a.get("value")), defuse(str(a.get("unit") or "")),
                   defuse(str(a.get("source") or "")), defuse(str(a.get("scope")))])
    _widths(assum.ws, {"A": 52, "B": 14, "C": 14, "D": 80, "E": 40})
    assum.ws.freeze_panes = "A2"

    eng.add(["constant", "value", "unit", "source"], bold=True)
    for a in engineering:
        eng.add([defuse(str(a.get("name"))), text_cell(a.get("value")), defuse(str(a.get("unit") or "")),
                 defuse(str(a.get("source") or ""))])
    _widths(eng.ws, {"A": 52, "B": 14, "C": 12, "D": 90})
    eng.ws.freeze_panes = "A2"

    # -- Local TCO: one column per profile --
    tco.add(["line", *[str(p.get("name")) for p in profiles]], bold=True)
    tco_rows: dict[str, int] = {}
    lines = [
        ("capex", "capex (hardware + other)", "={purchase}+{other}", USD),
        ("residual", "residual value at end of life", "={capex}*{residual_pct}/100", USD),
        ("annual_capital", "capital per year (annuity, net of residual)",
         "=IF({coc}=0,({capex}-{residual})/{life},({capex}-{residual}/(1+{coc}/100)^{life})*({coc}/100)"
         "/(1-(1+{coc}/100)^(-{life})))", USD),
        ("annual_upkeep", "upkeep per year", "={capex}*{maint}/100", USD),
        ("annual_fixed", "fixed cost per year (capital + upkeep)", "={annual_capital}+{annual_upkeep}", USD),
        ("utilisation", "utilisation", "{utilisation}", PCT),
        ("energy_gpu_h", "power per GPU-hour", "=({gpu_w}+{host_w}/{gpu_count})/1000*{pue}*{elec}", USD_SMALL),
        ("usd_gpu_h", "cost per GPU-hour at the utilisation",
         "={annual_fixed}/(8760*{utilisation_cell}*{gpu_count})+{energy_gpu_h}", USD_SMALL),
        ("energy_run", "power per run", "=({job_gpus}*{gpu_w}+{host_w})/1000*{pue}*{elec}*{job_hours}", USD),
        ("loaded_run", "cost per run, fully loaded",
         "={annual_fixed}/(8760*{utilisation_cell}*{gpu_count})*{job_gpus}*{job_hours}+{energy_run}", USD),
        ("marginal_run", "cost per run, marginal (power only if already owned)",
         "=IF({owned}=1,{energy_run},{loaded_run})", USD),
        ("running_month", "running cost per month (upkeep + power for the runs)",
         "={annual_upkeep}/12+{energy_run}*{runs}", USD),
        ("amortised_month", "cost per month, amortised (fixed/12 + power for the runs)",
         "={annual_fixed}/12+{energy_run}*{runs}", USD),
        ("capex_cash", "capex paid up front (nothing when already owned)", "=IF({owned}=1,0,{capex})", USD),
        ("upkeep_month", "upkeep per month", "={capex}*{maint}/100/12", USD),
        ("energy_period_run", "power per run in the period totals (all the machine's GPUs, time to result)",
         "=({gpu_count}*{gpu_w}+{host_w})/1000*{pue}*{elec}*{job_ttr}", USD),
        ("capacity", "runs a month the machine can take (free hours / time to result)",
         "=IF({job_ttr}>0,INT(MAX(0,730-{other_use})/{job_ttr}),1000000)", "0"),
        ("period_month_raw", "cost per month in the period totals (upkeep + power for the runs)",
         "={runs}*{energy_period_run}+{upkeep_month}", USD),
        ("break_even", "break-even utilisation against the recommendation",
         '=IF({rec_gpu_h}-{energy_gpu_h}>0,{annual_fixed}/(8760*{gpu_count}*({rec_gpu_h}-{energy_gpu_h})),"never")',
         PCT),
    ]
    start_row = 2
    for i, (key, _, _, _) in enumerate(lines):
        tco_rows[key] = start_row + i
    rec_gpu_h = f"({ref['price']}/{ref['gpus']})" if rec and "price" in ref else "0"
    for key, label, template, numfmt in lines:
        row = [label]
        for j, p in enumerate(profiles):
            name = str(p.get("name"))
            col = get_column_letter(j + 2)

            def cell(k: str) -> str:
                return f"{col}{tco_rows[k]}"

            r = {f: ref.get(f"{name}:{f}", "0") for f in PROFILE_FIELDS}
            if name in derived:
                util = (f"=ROUND(MAX(0.001,MIN(1,({ref['runs']}*{ref[f'{name}:job_hours']}+{ref['other_use']})"
                        f"/730)),4)")
            else:
                util = f"={r['utilisation']}"
            row.append(template.format(
                purchase=r["purchase_price_usd"], other=r["other_capex_usd"], residual_pct=r["residual_value_pct"],
                coc=r["cost_of_capital_pct"], life=r["lifetime_years"], maint=r["maintenance_pct_per_year"],
                gpu_w=r["gpu_power_w"], host_w=r["host_power_w"], gpu_count=r["gpu_count"], pue=r["pue"],
                elec=r["electricity_usd_per_kwh"], owned=r["already_owned"], utilisation=util,
                utilisation_cell=cell("utilisation"), job_hours=ref.get(f"{name}:job_hours", "0"),
                job_gpus=ref.get(f"{name}:job_gpus", "0"), runs=ref["runs"], rec_gpu_h=rec_gpu_h,
                job_ttr=ref.get(f"{name}:job_ttr", "0"), other_use=ref["other_use"],
                upkeep_month=cell("upkeep_month"), energy_period_run=cell("energy_period_run"),
                capex=cell("capex"), residual=cell("residual"), annual_capital=cell("annual_capital"),
                annual_upkeep=cell("annual_upkeep"), annual_fixed=cell("annual_fixed"),
                energy_gpu_h=cell("energy_gpu_h"), energy_run=cell("energy_run"), loaded_run=cell("loaded_run")))
        tco.add(row, {j + 2: numfmt for j in range(len(profiles))})
    if not profiles:
        tco.add(["No local hardware profile in this plan (use --local-profile)."])
    _widths(tco.ws, {"A": 58, **{get_column_letter(j + 2): 22 for j in range(len(profiles))}})

    # -- Summary --
    s = summary
    s.add([defuse(f"GPU plan: {(doc.get('job') or {}).get('name') or (doc.get('job') or {}).get('model') or 'job'}"),
           None, None, None], bold=True)
    s.add([CURRENCY_NOTE + " Column B recalculates from the Assumptions sheet; column D is the plan's own figure."])
    s.add(["item", "value", "unit", "the plan's figure"], bold=True)
    timed = bool(rec) and isinstance(rec.get("hours"), (int, float))
    period_rows: dict[str, dict[str, Any]] = {}
    scen: dict[str, Any] = {}
    if rec and not timed:
        s.add(["recommended option", defuse(describe(rec)), "", ""])
        s.add(["cost per million tokens", rec.get("usd_per_million_tokens"), "USD", rec.get("usd_per_million_tokens")],
              {2: USD_SMALL, 4: USD_SMALL})
        s.add(["no dataset size was given, so there is no cost per run, month or year", None, None, None])
    elif rec:
        scen = periods.get("scenarios") or {}
        s.add(["recommended option", defuse(describe(rec)), "", ""])
        if cloud_opt is not rec:
            s.add(["cloud option in the period totals", defuse(describe(cloud_opt)), "", ""])
        cost_doc = cloud_opt.get("cost_with_startup_usd", cloud_opt.get("cost_usd"))
        # planner: price x billed hours of (training + start-up); billed = rounded up to the provider's
        # granularity, at least its minimum (pricing.startup.billed_hours)
        t_run = f"({ref['hours']}+{ref['startup']})"
        billed = (f"IF({ref['billing_step']}>1,ROUNDUP(MAX({t_run}*3600,{ref['billing_min']})/{ref['billing_step']}"
                  f"-1E-9,0)*{ref['billing_step']},MAX({t_run}*3600,{ref['billing_min']}))/3600")
        r_cost = s.add(["cloud cost per run", f"={ref['price']}*{billed}", "USD", cost_doc],
                       {2: USD, 4: USD})
        s.add(["cloud time to result", f"={t_run}", "h", cloud_opt.get("time_to_result_hours", cloud_opt.get("hours"))],
              {2: HOURS, 4: HOURS})
        r_runs = s.add(["runs per month", f"={ref['runs']}", "runs", periods.get("runs_per_month")])
        cloud = scen.get("cloud") or {}
        cloud_raw = f"B{r_cost}*B{r_runs}"
        period_rows["cloud"] = _period_rows(s, "cloud", cloud, "0", cloud_raw, ref, r_runs, None)
    else:
        s.add(["recommended option", "none: " + defuse(str(doc.get("recommendation_reason") or "no option fits")),
               "", ""])
    prof = chosen_profile(doc)
    if prof is not None and timed:
        j = profiles.index(prof)
        col = get_column_letter(j + 2)

        def t(k: str) -> str:
            return f"'Local TCO'!{col}{tco_rows[k]}"

        local = scen.get("local") or {}
        s.add(["local profile compared", defuse(str(prof.get("name"))), "", ""])
        s.add(["local utilisation", f"={t('utilisation')}", "", prof.get("utilisation")], {2: PCT, 4: PCT})
        s.add(["local cost per GPU-hour at that utilisation", f"={t('usd_gpu_h')}", "USD/GPU-h",
               prof.get("usd_per_gpu_hour")], {2: USD_SMALL, 4: USD_SMALL})
        s.add(["local cost per run, fully loaded", f"={t('loaded_run')}", "USD", prof.get("loaded_cost_usd")],
              {2: USD, 4: USD})
        s.add(["break-even utilisation against the recommendation", f"={t('break_even')}", "",
               prof.get("break_even_vs_recommendation")], {2: PCT, 4: PCT})
        r_cap = s.add(["local runs a month the machine can take", f"={t('capacity')}", "runs",
                       local.get("capacity_runs_per_month")], {2: "0", 4: "0"})
        r_feasible = s.add(["local can take every run", f'=IF({t("capacity")}>=B{r_runs},"yes","no")', "",
                            None if "feasible" not in local else ("yes" if local["feasible"] else "no")])
        period_rows["local"] = _period_rows(s, "local", local, t("capex_cash"), t("period_month_raw"), ref, r_runs,
                                            period_rows.get("cloud"))
        if "cloud" in period_rows:
            hyb = scen.get("hybrid") or {}
            here = f"MIN(B{r_runs},B{r_cap})"
            s.add(["hybrid: share of the runs on the local machine", f"=ROUND({here}/B{r_runs},4)", "",
                   hyb.get("local_share")], {2: PCT, 4: PCT})
            hyb_raw = f"{here}*{t('energy_period_run')}+{t('upkeep_month')}+(B{r_runs}-{here})*B{r_cost}"
            period_rows["hybrid"] = _period_rows(s, "hybrid", hyb, t("capex_cash"), hyb_raw, ref, r_runs,
                                                 period_rows["cloud"])
            c, lo, hy = (period_rows[k]["horizon"] for k in ("cloud", "local", "hybrid"))
            # the cheapest feasible scenario over the horizon; ties go to cloud, then local (planner's order)
            s.add(["cheapest over the horizon", f'=IF(AND(B{c}<=B{hy},OR(B{r_feasible}="no",B{c}<=B{lo})),"cloud",'
                   f'IF(AND(B{r_feasible}="yes",B{lo}<=B{hy}),"local","hybrid"))', "", periods.get("cheapest")])
    if periods.get("scenarios"):
        s.add([])
        s.add(["the plan's period totals", "per run", "per month", "per year", "over the horizon", "capex",
               "running per month", "payback month"], bold=True)
        for name, sc in periods["scenarios"].items():
            s.add([defuse(str(name)), sc.get("per_run_usd"), sc.get("per_month_usd"), sc.get("per_year_usd"),
                   sc.get("horizon_usd"), sc.get("capex_usd"), sc.get("running_per_month_usd"),
                   sc.get("payback_month")], {i: USD for i in range(2, 8)})
    _widths(s.ws, {"A": 52, "B": 26, "C": 14, "D": 18, "E": 16, "F": 14, "G": 18, "H": 14})
    for cell in s.ws[1]:
        cell.font = Font(bold=True, size=13)

    # -- Options: every per-region row --
    cols = option_columns(doc)
    options_ws.append(cols)
    for cell in options_ws[1]:
        cell.font = bold
    fill = PatternFill("solid", fgColor="E2F4EC")
    flag_fill = PatternFill("solid", fgColor="FDF0D5")
    formats = {i: (USD if c in MONEY_COLUMNS else USD_SMALL if c in SMALL_MONEY_COLUMNS else HOURS)
               for i, c in enumerate(cols) if c in MONEY_COLUMNS | SMALL_MONEY_COLUMNS | HOUR_COLUMNS}
    n_rows = 1
    for o in doc.get("options") or []:
        n_rows += 1
        recommended = is_recommended(o, doc)
        flagged = not recommended and price_flag(o, doc) in ("stale", "outlier")
        for i, c in enumerate(cols):
            value = option_cell(o, c, doc)
            if value is None and not (recommended or flagged):
                continue  # an empty cell costs as much to write as a full one
            cell = options_ws.cell(row=n_rows, column=i + 1, value=value)
            if i in formats:
                cell.number_format = formats[i]
            if recommended:
                cell.fill = fill
                cell.font = bold
            elif flagged:
                cell.fill = flag_fill
    options_ws.freeze_panes = "A2"
    options_ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{n_rows}"
    for i, c in enumerate(cols, start=1):
        options_ws.column_dimensions[get_column_letter(i)].width = 34 if c in ("notes", "source") else max(len(c), 8) + 3

    # -- Sensitivity --
    sens.add(list(SENSITIVITY_COLUMNS), bold=True)
    idx = {c: i + 1 for i, c in enumerate(SENSITIVITY_COLUMNS)}
    for r in sensitivity_table(doc):
        sens.add([text_cell(r.get(c)) for c in SENSITIVITY_COLUMNS], {idx["cost_low_usd"]: USD, idx["cost_high_usd"]: USD,
                                                               idx["time_low_hours"]: HOURS,
                                                               idx["time_high_hours"]: HOURS})
    _widths(sens.ws, {"A": 36, "H": 50})
    sens.ws.freeze_panes = "A2"

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
