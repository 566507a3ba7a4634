"""The readable view of a plan document (rich tables), printed by `gpuplan plan` by default."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich import box
from rich.table import Table

from planner.decide.compare import duration, money


def _hours(h: float | None) -> str:
    return "-" if h is None else duration(h)


def _money(x: float | None) -> str:
    return "-" if x is None else money(x)


def _tps(x: float) -> str:
    return f"{x:,.0f}"


def print_plan(doc: dict[str, Any], top: int = 10, console: Console | None = None) -> None:
    if console is None:
        import sys

        # Piped output (reports, CI logs) gets a wide table rather than 80 wrapped columns.
        console = Console() if sys.stdout.isatty() else Console(width=150)
    job, model = doc["job"], doc["model"]
    params = model.get("params_total", 0) / 1e9
    console.print(f"[bold]{job.get('name') or model.get('name')}[/bold]: {job['method']} of {model['name']} "
                  f"({params:.2f}B params, {model.get('params_trainable', 0) / 1e6:,.1f}M trainable), "
                  f"seq {job['seq_len']} x micro batch {job['batch_size']} x accum {job['grad_accum']}, "
                  f"{job['optimizer']}, {job['precision']}, checkpointing "
                  f"{'on' if job['gradient_checkpointing'] else 'off'}", highlight=False)
    if isinstance(doc.get("gpus"), list):
        _print_grid(console, doc)
    else:
        _print_single(console, doc)
    _print_options(console, doc, top)


def _print_grid(console: Console, doc: dict[str, Any]) -> None:
    """One row per GPU type: the fewest GPUs (of 1, 2, 4, 8) that fit; every count is in --format json."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for p in doc["gpus"]:
        by_type.setdefault(p["gpu"], []).append(p)
    t = Table(title="The job on each GPU type at the fewest of 1/2/4/8 GPUs that fit, same global batch (every "
                    "count: --format json); time = training hours", title_justify="left", box=box.SIMPLE_HEAD,
              padding=(0, 1), pad_edge=False)
    for col, just in (("GPU", "left"), ("GPUs", "right"), ("fits", "left"), ("peak/card GiB", "right"),
                      ("tokens/s", "right"), ("MFU", "right"), ("time", "right"), ("max batch", "right"),
                      ("max seq", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for gpu, plans in by_type.items():
        fitting = [p for p in plans if p["fits"]]
        p = fitting[0] if fitting else plans[-1]
        m, tp, lim = p["memory"], p["throughput"], p["limits"]
        if fitting:
            verdict = "[green]yes[/green]" if p["fits"] is True else "[yellow]tight[/yellow]"
        else:
            need = plans[0]["limits"].get("min_gpus")
            verdict = f"[red]no[/red] (needs {need})" if need else "[red]no[/red]"
        t.add_row(gpu, str(p["gpus"]), verdict, f"{m['peak_reserved_gib']:.1f} / {m['capacity_gib']:.0f}",
                  _tps(tp["tokens_per_s"]), f"{tp['mfu']:.0%}",
                  _hours(p["time"]["hours"]) if p.get("time") and fitting else "-",
                  str(lim["max_batch_size"] or "-"), str(lim["max_seq_len"] or "-"))
    console.print(t)


def _print_single(console: Console, doc: dict[str, Any]) -> None:
    m, tp, lim = doc["memory"], doc["throughput"], doc["limits"]
    verdict = ("[green]fits[/green]" if doc["fits"] is True else "[yellow]tight (inside the estimate's error band)"
               "[/yellow]" if doc["fits"] else "[red]does not fit[/red]")
    console.print(f"\n{doc['gpus']} x {doc['gpu']}: {verdict} — peak {m['peak_allocated_gib']:.2f} GiB allocated, "
                  f"{m['peak_reserved_gib']:.2f} GiB reserved of {m['capacity_gib']:.1f} GiB per GPU")
    t = Table(title="Memory per GPU (GiB)", title_justify="left")
    t.add_column("component")
    t.add_column("GiB", justify="right")
    for k, v in m["breakdown_gib"].items():
        t.add_row(k, f"{v:.2f}")
    t.add_row("[bold]peak allocated[/bold]", f"[bold]{m['peak_allocated_gib']:.2f}[/bold]")
    console.print(t)
    time = doc.get("time")
    console.print(f"Speed: {_tps(tp['tokens_per_s'])} tokens/s ({tp['mfu']:.0%} MFU), {tp['step_time_s']:.2f} s "
                  f"per optimizer step of {tp['tokens_per_step']:,} tokens"
                  + (f"; {time['steps']:,} steps, {_hours(time['hours'])}" if time else "; give dataset_tokens "
                     "for the total time"))
    console.print(f"Limits here: micro batch up to {lim['max_batch_size'] or '-'}, seq_len up to "
                  f"{lim['max_seq_len'] or '-'}; fewest {doc['gpu']} that fit: {lim['min_gpus'] or 'none up to 64'}")
    for note in doc.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]")
    if doc.get("suggestions"):
        s = Table(title="Suggestions" + ("" if doc["fits"] else " (to make it fit)"), title_justify="left")
        for col in ("change", "peak reserved GiB", "fits", "tokens/s", "speed"):
            s.add_column(col)
        for sg in doc["suggestions"]:
            s.add_row(sg["change"], f"{sg['peak_reserved_gib']:.1f}",
                      "yes" if sg["fits"] is True else "tight" if sg["fits"] else "no",
                      _tps(sg["tokens_per_s"]), f"{sg['speed_ratio']:.2f}x")
        console.print(s)


def _kind(o: dict[str, Any]) -> str:
    return "local" if o["target"] == "local" else ("spot" if o["spot"] else "on-demand")


def _print_options(console: Console, doc: dict[str, Any], top: int) -> None:
    """The ranked options, readable at 100 columns: provider, instance, region and GPU names are never cut or
    wrapped (instance and region share a cell, one per line); long sentences wrap at word boundaries."""
    gb = doc.get("global_batch")
    if gb and doc.get("options"):
        steps = f" x {gb['steps']:,} steps" if gb.get("steps") else ""
        console.print(f"\nEvery option trains the same global batch: {gb['sequences']:,} sequences "
                      f"({gb['tokens']:,} tokens){steps}.", highlight=False)
    options = [o for o in doc.get("options", []) if o.get("fits") and o.get("rank_cost")]
    if not options:
        if "options" in doc:
            console.print("\nNo priced option fits this job (see the suggestions above).")
        return
    options.sort(key=lambda o: o["rank_cost"])
    t = Table(title=f"Cheapest {min(top, len(options))} of {len(options)} ranked options", title_justify="left",
              box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    t.add_column("#", justify="right", no_wrap=True)
    t.add_column("provider", no_wrap=True)
    t.add_column("instance / region", no_wrap=True)
    t.add_column("GPUs / kind", no_wrap=True)
    t.add_column("training", justify="right", no_wrap=True)
    t.add_column("to result", justify="right", no_wrap=True)
    t.add_column("$ all-in\n$ per h", justify="right", no_wrap=True)
    for o in options[:top]:
        mark = ("*" if o.get("pareto") else "") + ("!" if o.get("price_flag", "normal") != "normal" else "")
        where = o["instance_type"] + ("\n" + o["region"] if o.get("region") else "")
        all_in = o.get("cost_with_startup_usd")
        t.add_row(f"{o['rank_cost']}{mark}", o["provider"], where, f"{o['gpus']}x {o['gpu']}\n{_kind(o)}",
                  _hours(o.get("hours")), _hours(o.get("time_to_result_hours")),
                  f"{_money(all_in if all_in is not None else o.get('cost_usd'))}\n{_money(o.get('usd_per_hour'))}")
    console.print(t)
    console.print("[dim]training: hours of training (spot: incl. the expected preemption overhead). to result: "
                  "training plus start-up (provisioning, setup, weights and data download, upload; spot restarts). "
                  "$ all-in: the billed time to result at the price per hour below it. * on the cost/time Pareto "
                  "front; ! flagged price (allowed by flag).[/dim]")
    flagged = [o for o in doc.get("options", []) if o.get("fits") and not o.get("rank_cost")
               and o.get("price_flag", "normal") != "normal"]
    if flagged:
        cheaper = [o for o in flagged if (o.get("cost_with_startup_usd") or float("inf"))
                   < (options[0].get("cost_with_startup_usd") or 0)]
        console.print(f"{len(flagged)} fitting offers with an outlier or stale price are listed in --format json "
                      f"but not ranked ({len(cheaper)} of them cheaper than #1); --allow-outlier-prices / "
                      "--allow-stale-prices ranks them.", highlight=False)
    rec = doc.get("recommendation")
    if rec:
        console.print(f"[bold]Recommendation:[/bold] {rec['reason']}", highlight=False)
        lo_c, _, hi_c = rec.get("cost_range_usd") or (None, None, None)
        lo_t, _, hi_t = rec.get("time_to_result_range_hours") or (None, None, None)
        if lo_c is not None and lo_t is not None:
            console.print(f"Range: {money(lo_c)} to {money(hi_c)}, result in {_hours(lo_t)} to {_hours(hi_t)}.",
                          highlight=False)
        if rec.get("changed"):
            console.print("Runs with: " + "; ".join(rec["changed"]) + " (tuned for this GPU type and count; "
                          "`gpuplan launch` ships it, --as-written keeps yours).", highlight=False)
        for risk in rec.get("risks") or []:
            console.print(f"[dim]risk: {risk}[/dim]", highlight=False)
    _print_periods(console, doc.get("periods"))
    stale = [p for p, s in doc.get("prices", {}).items() if s.get("stale")]
    if stale:
        console.print(f"[yellow]Prices older than 30 days: {', '.join(stale)} (gpuplan prices refresh)[/yellow]")


def _print_periods(console: Console, periods: dict[str, Any] | None) -> None:
    if not periods:
        return
    t = Table(title=f"{periods['runs_per_month']:g} runs a month over {periods['horizon_months']} months (USD)",
              title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for col in ("scenario", "capex", "per month", "per year", "horizon", "payback month"):
        t.add_column(col, justify="left" if col == "scenario" else "right", no_wrap=True)
    for name, sc in periods["scenarios"].items():
        label = name + (f" ({sc['local_share']:.0%} local)" if "local_share" in sc else "")
        if sc.get("feasible") is False:
            label += " (does not fit the month)"
        t.add_row(label, money(sc["capex_usd"]), money(sc["per_month_usd"]), money(sc["per_year_usd"]),
                  money(sc["horizon_usd"]), str(sc["payback_month"] or "-"))
    console.print(t)
    console.print(f"Cheapest over the horizon: {periods['cheapest']} (cloud: {periods['cloud_option']}; local: "
                  f"{periods['local_profile'] or 'no fitting profile'}).", highlight=False)
