"""Cost comparison: every cloud offer (on-demand and spot) and local profile, ranked by cost and time.

Input is an `evaluate(gpu, gpus) -> GpuPlan` callable (the planner's estimator), called once per (gpu, count).
An option fits when the planner says the job fits on that GPU type and count. When no single instance of a GPU
type fits, 2 and 4 nodes of its largest instance are considered too. Options that fit and meet the deadline and
budget are ranked; the Pareto front is over (cost, hours), or ($/million tokens, -tokens/s) when the spec has no
dataset size. The recommendation is the cheapest ranked option, with a one-sentence reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from planner.result import GpuPlan, Option, to_dict
from pricing.catalog import OfferSet
from pricing.errors import PricingInputError
from pricing.local import LocalProfile, job_cost, summary
from pricing.spot import SpotAssumptions, overhead_factor

MULTI_NODE_COUNTS = (2, 4)
# The recommendation pays up to this much more than the cheapest option to finish sooner: among options on
# the cost/time Pareto front, it takes the fastest one within (1 + PAY_FOR_SPEED) x the cheapest cost. A
# 13-hour job for $0.76 loses to a 52-minute one for $0.83. Listed in the plan's assumptions.
PAY_FOR_SPEED = 0.10


@dataclass
class Filters:
    provider: str | list[str] | None = None
    region: str | None = None
    spot: bool | None = None  # True: spot only, False: on-demand only, None: both
    max_hourly: float | None = None  # USD/h for all instances together
    deadline_hours: float | None = None
    budget: float | None = None  # USD for the job
    include_local: bool = True

    def check(self) -> None:
        for name in ("max_hourly", "deadline_hours", "budget"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise PricingInputError(name.replace("_", "-"), f"{v!r} must be a positive number",
                                        f"e.g. --{name.replace('_', '-')} 10")


@dataclass
class Comparison:
    options: list[Option]
    recommendation: Option | None
    reason: str
    prices: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    local_profiles: list[dict[str, Any]] = field(default_factory=list)
    assumptions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        rec = None
        if self.recommendation is not None:
            rec = {**to_dict(self.recommendation), "reason": self.reason}
        return {"options": [to_dict(o) for o in self.options], "recommendation": rec,
                "recommendation_reason": self.reason, "prices": self.prices,
                "local_profiles": self.local_profiles, "assumptions": self.assumptions, "warnings": self.warnings}


def _cached(evaluate: Callable[[str, int], GpuPlan]) -> Callable[[str, int], GpuPlan]:
    memo: dict[tuple[str, int], GpuPlan] = {}

    def get(gpu: str, gpus: int) -> GpuPlan:
        key = (gpu, gpus)
        if key not in memo:
            memo[key] = evaluate(gpu, gpus)
        return memo[key]

    return get


def _option(target: str, provider: str, instance_type: str, region: str | None, zone: str | None, plan: GpuPlan,
            nodes: int, spot: bool, usd_per_hour: float, overhead: float, source: str, as_of: str,
            notes: list[str]) -> Option:
    tps = plan.throughput.tokens_per_s if plan.throughput else 0.0
    hours = plan.time.hours * overhead if plan.time is not None and plan.time.hours is not None else None
    cost = usd_per_hour * hours if hours is not None else None
    per_mtok = usd_per_hour * overhead / (tps * 3600 / 1e6) if tps > 0 else None
    return Option(target=target, provider=provider, instance_type=instance_type, region=region, gpu=plan.gpu,
                  gpus=plan.gpus, spot=spot, usd_per_hour=usd_per_hour, hours=hours, cost_usd=cost, fits=plan.fits,
                  zone=zone, nodes=nodes, usd_per_gpu_hour=usd_per_hour / plan.gpus, tokens_per_s=tps,
                  usd_per_million_tokens=per_mtok, overhead_factor=overhead, source=source, as_of=as_of,
                  notes=list(notes))


def _describe(o: Option) -> str:
    where = f"{o.provider} {o.instance_type}" + (f" in {o.region}" if o.region else "")
    if o.nodes > 1:
        where = f"{o.nodes}x {where}"
    kind = "local" if o.target == "local" else ("spot" if o.spot else "on-demand")
    return f"{where} ({o.gpus}x {o.gpu}, {kind})"


def money(x: float | None) -> str:
    """Dollars with cents, or three significant figures below a dollar (per-token prices are fractions)."""
    if x is None:
        return "n/a"
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:.3g}"


def duration(hours: float) -> str:
    """Hours, or minutes below an hour ("0.0 h" helps nobody)."""
    return f"{hours:,.1f} h" if hours >= 1 else f"{max(1, round(hours * 60))} min"


def compare_options(evaluate: Callable[[str, int], GpuPlan], offers: OfferSet, *,
                    local_profiles: Iterable[LocalProfile] = (), filters: Filters = Filters(),
                    spot: SpotAssumptions = SpotAssumptions()) -> Comparison:
    filters.check()
    ev = _cached(evaluate)
    spot_factor = overhead_factor(spot)
    providers = None
    if filters.provider is not None:
        providers = {filters.provider} if isinstance(filters.provider, str) else set(filters.provider)
        providers = {p.lower() for p in providers}
    kinds = [False, True] if filters.spot is None else [bool(filters.spot)]

    cloud = [o for o in offers.offers
             if (providers is None or o.provider in providers) and (filters.region is None or o.region == filters.region)]
    options: list[Option] = []

    def add_offer(o, nodes: int) -> None:
        plan = ev(o.gpu, o.gpu_count * nodes)
        for is_spot in kinds:
            price = o.spot_usd_per_hour if is_spot else o.usd_per_hour
            if price is None:
                continue
            total = price * nodes
            if filters.max_hourly is not None and total > filters.max_hourly:
                continue
            notes = list(o.notes)
            if nodes > 1:
                notes.append(f"{nodes} nodes of {o.instance_type}: no single {o.gpu} instance fits the job")
            options.append(_option("cloud", o.provider, o.instance_type, o.region, o.zone if is_spot else None,
                                   plan, nodes, is_spot, total, spot_factor if is_spot else 1.0, o.source, o.as_of,
                                   notes))

    for o in cloud:
        add_offer(o, 1)
    by_gpu: dict[str, list] = {}
    for o in cloud:
        by_gpu.setdefault(o.gpu, []).append(o)
    for gpu, group in by_gpu.items():
        if any(ev(gpu, o.gpu_count).fits for o in group):
            continue
        largest = max(o.gpu_count for o in group)
        for nodes in MULTI_NODE_COUNTS:
            for o in group:
                if o.gpu_count == largest:
                    add_offer(o, nodes)

    local_summaries = []
    profiles = list(local_profiles) if filters.include_local else []
    if filters.spot is not True and (providers is None or "local" in providers):
        for p in profiles:
            plan = ev(p.gpu, p.gpu_count)
            hourly = job_cost(p, 1.0).marginal_cost_usd
            if filters.max_hourly is not None and hourly > filters.max_hourly:
                continue
            basis = "electricity only (already owned)" if p.already_owned else \
                f"fully loaded at {p.utilisation:.0%} utilisation"
            options.append(_option("local", "local", p.name, None, None, plan, 1, False, hourly, 1.0,
                                   "local profile", "", [f"cost basis: {basis}"]))

    _rank(options, filters)
    ranked = sorted((o for o in options if o.rank_cost is not None), key=lambda o: o.rank_cost)
    rest = sorted((o for o in options if o.rank_cost is None),
                  key=lambda o: (not o.fits, o.cost_usd if o.cost_usd is not None else float("inf"),
                                 o.usd_per_million_tokens or float("inf")))
    options = ranked + rest
    rec, reason = _recommend(options, filters)

    # local profiles block: break-even against the cheapest like-for-like cloud on-demand $/GPU-h
    for p in profiles:
        same = [o.usd_per_gpu_hour for o in options if o.target == "cloud" and not o.spot and o.gpu == p.gpu]
        ref = min(same) if same else None
        plan = ev(p.gpu, p.gpu_count)
        hours = plan.time.hours if plan.time is not None else None
        local_summaries.append(summary(p, cloud_usd_per_gpu_hour=ref, job_hours=hours))

    warnings = list(offers.warnings)
    if not any(o.fits for o in options):
        warnings.append("no option fits this job on any GPU considered; see the plan's suggestions")
    assumptions = spot.assumptions() + [{"name": "spot overhead factor", "value": round(spot_factor, 4),
                                         "unit": "x", "source": "pricing.spot model from the assumptions above"},
                                        {"name": "recommendation: extra cost accepted to finish sooner",
                                         "value": PAY_FOR_SPEED, "unit": "fraction of the cheapest cost",
                                         "source": "planner.compare.PAY_FOR_SPEED (among Pareto-front options)"}]
    return Comparison(options, rec, reason, offers.prices(), warnings, local_summaries, assumptions)


def _rank(options: list[Option], f: Filters) -> None:
    eligible = []
    for o in options:
        if not o.fits:
            continue
        if f.deadline_hours is not None and o.hours is not None and o.hours > f.deadline_hours:
            o.notes.append(f"misses the {f.deadline_hours:g} h deadline")
            continue
        if f.budget is not None and o.cost_usd is not None and o.cost_usd > f.budget:
            o.notes.append(f"over the {money(f.budget)} budget")
            continue
        eligible.append(o)
    if not eligible:
        return
    timed = all(o.hours is not None for o in eligible)
    if timed:
        def cost_key(o): return (o.cost_usd, o.hours)
        def time_key(o): return (o.hours, o.cost_usd)
    else:  # no dataset size: $/million tokens and tokens/s
        def cost_key(o): return (o.usd_per_million_tokens or float("inf"), -o.tokens_per_s)
        def time_key(o): return (-o.tokens_per_s, o.usd_per_million_tokens or float("inf"))
    for i, o in enumerate(sorted(eligible, key=cost_key), 1):
        o.rank_cost = i
    for i, o in enumerate(sorted(eligible, key=time_key), 1):
        o.rank_time = i
    # Pareto front: sweep by cost; an option is on the front when it is faster than everything cheaper
    best_time = float("inf")
    for o in sorted(eligible, key=cost_key):
        t = time_key(o)[0]
        if t < best_time:
            o.pareto = True
            best_time = t


def _recommend(options: list[Option], f: Filters) -> tuple[Option | None, str]:
    ranked = [o for o in options if o.rank_cost is not None]
    if not ranked:
        if not any(o.fits for o in options):
            return None, "Nothing fits: no GPU type and count considered has enough memory for this job as given."
        limits = [s for s, v in (("deadline", f.deadline_hours), ("budget", f.budget)) if v is not None]
        return None, f"No fitting option meets the {' and '.join(limits) or 'filters'}; relax it to see a recommendation."
    cheapest = min(ranked, key=lambda o: o.rank_cost)
    fastest = min(ranked, key=lambda o: o.rank_time)
    timed = cheapest.hours is not None
    cost = (lambda o: o.cost_usd) if timed else (lambda o: o.usd_per_million_tokens)
    front = [o for o in ranked if o.pareto and cost(o) <= cost(cheapest) * (1 + PAY_FOR_SPEED)]
    best = min(front or [cheapest], key=lambda o: o.rank_time)
    cond = []
    if f.deadline_hours is not None:
        cond.append(f"meeting the {f.deadline_hours:g} h deadline")
    if f.budget is not None:
        cond.append(f"within the {money(f.budget)} budget")
    cond_s = (" " + " and ".join(cond)) if cond else ""
    spot_note = f" (incl. x{best.overhead_factor:.2f} expected preemption overhead)" if best.spot else ""
    if timed:
        if best is cheapest:
            what = f"{_describe(best)} is the cheapest fitting option{cond_s} at {money(best.cost_usd)} for " \
                   f"{duration(best.hours)}{spot_note}"
        else:
            extra = best.cost_usd / cheapest.cost_usd - 1
            what = (f"{_describe(best)} finishes in {duration(best.hours)} for {money(best.cost_usd)}{cond_s}"
                    f"{spot_note}: {extra:.0%} more than the cheapest, {_describe(cheapest)} at "
                    f"{money(cheapest.cost_usd)}, which would take {duration(cheapest.hours)}")
        if fastest is best:
            return best, what + "; nothing fitting is faster."
        return best, (what + f"; the fastest, {_describe(fastest)}, would finish in {duration(fastest.hours)} but cost "
                      f"{money(fastest.cost_usd)} ({fastest.cost_usd / best.cost_usd:.1f}x).")
    what = (f"{_describe(best)} costs {money(best.usd_per_million_tokens)} per million tokens{cond_s} "
            f"(no dataset size given, so no total)")
    if best is not cheapest:
        what += (f", {best.usd_per_million_tokens / cheapest.usd_per_million_tokens - 1:.0%} more than the cheapest, "
                 f"{_describe(cheapest)}, at {best.tokens_per_s / cheapest.tokens_per_s:.1f}x its speed")
    if fastest is best:
        return best, what + "; nothing fitting is faster."
    return best, (what + f"; the fastest, {_describe(fastest)}, runs {fastest.tokens_per_s / best.tokens_per_s:.1f}x "
                  f"faster at {money(fastest.usd_per_million_tokens)} per million tokens.")
