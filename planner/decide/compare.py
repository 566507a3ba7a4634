"""Cost comparison: every cloud offer (on-demand and spot) and local profile, ranked by what a run really costs.

Input is an `evaluate(gpu, gpus) -> GpuPlan` callable (the planner's estimator), or a `tune(gpu, gpus) -> Tuned`
(planner.decide.tune: the same global batch on every option, in the fastest configuration that fits there),
called once per (gpu, count) and shared by every offer of that GPU type and count.

Each option's time to result is its training hours (spot: with the expected preemption overhead) plus its
start-up and tear-down (pricing.startup: provisioning, setup, weights and dataset download, upload, and for spot
the restarts after each expected preemption); its cost is its hourly price times the billed time to result
(the provider's granularity and minimum). Options rank on those two.

Only options that fit (with the tuned configuration), keep the global batch, meet the deadline and budget and
have a normal price (pricing.confidence; flagged prices take `allow_outlier` / `allow_stale`) are ranked. The
Pareto front is over (cost with start-up, time to result), or ($/million tokens, -tokens/s) without a dataset
size. The recommendation is the fastest Pareto option within PAY_FOR_SPEED of the cheapest, with a reason a
finance reviewer can follow, a cost and time range, the risks, and the alternatives.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from planner.result import GpuPlan, Option, to_dict
from pricing.catalog import OfferSet
from pricing.confidence import assumptions as confidence_assumptions
from pricing.confidence import price_flags
from pricing.errors import PricingInputError
from pricing.local import LocalProfile, job_cost, summary
from pricing.spot import SpotAssumptions, overhead_factor
from pricing.startup import StartupAssumptions, billed_hours, startup
from pricing.startup import assumptions as startup_assumptions

MULTI_NODE_COUNTS = (2, 4)
# The recommendation pays up to this much more than the cheapest option to finish sooner: among options on
# the cost/time Pareto front, it takes the fastest one within (1 + PAY_FOR_SPEED) x the cheapest cost. A
# 13-hour job for $0.76 loses to a 52-minute one for $0.83. Listed in the plan's assumptions.
PAY_FOR_SPEED = 0.10
# The cost and time ranges: training time varies with the estimator's speed error (a 90 % band is 2.44x the
# median absolute error for normally distributed errors: 1.645 / 0.674); start-up from half to twice the
# assumptions; spot at twice the assumed preemption rate at the high end.
BAND_PER_MEDIAN_ERROR = 1.645 / 0.674
STARTUP_LOW, STARTUP_HIGH = 0.5, 2.0
DEFAULT_SPEED_ERROR = 0.117  # median absolute error of the speed model on published runs (planner accuracy.json)
# Start-up that is more than this share of a run's cost is named in the reason.
STARTUP_SHARE_WORTH_SAYING = 0.25


@dataclass
class Filters:
    provider: str | list[str] | None = None
    region: str | None = None
    spot: bool | None = None  # True: spot only, False: on-demand only, None: both
    max_hourly: float | None = None  # USD/h for all instances together
    deadline_hours: float | None = None
    budget: float | None = None  # USD for the job
    include_local: bool = True
    allow_outlier: bool = False  # rank offers whose price is far below their peers'
    allow_stale: bool = False  # rank offers from stale or older-format catalogs

    def check(self) -> None:
        for name in ("max_hourly", "deadline_hours", "budget"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v <= 0
                                  or v == float("inf")):
                raise PricingInputError(name.replace("_", "-"), f"{v!r} must be a positive number",
                                        f"e.g. --{name.replace('_', '-')} 10")


@dataclass(frozen=True)
class JobBytes:
    """What a run moves: the checkpoint it downloads, what it uploads, how many training tokens it reads."""

    weights_bytes: float = 0.0
    output_bytes: float = 0.0
    dataset_tokens: int | None = None
    dataset_file_bytes: float | None = None  # a local data file's size (None: a hub dataset)


@dataclass
class Comparison:
    options: list[Option]
    recommendation: Option | None
    reason: str
    prices: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    local_profiles: list[dict[str, Any]] = field(default_factory=list)
    assumptions: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # recommendation ranges, risks; alternatives

    def to_dict(self) -> dict[str, Any]:
        rec = None
        if self.recommendation is not None:
            rec = {**to_dict(self.recommendation), "reason": self.reason,
                   **self.extras.get("recommendation", {})}
        alt = self.extras.get("alternatives", {})
        return {"options": [_option_dict(o) for o in self.options], "recommendation": rec,
                "recommendation_reason": self.reason, "prices": self.prices,
                "alternatives": {k: (to_dict(v) if v is not None else None) for k, v in alt.items()},
                "local_profiles": self.local_profiles, "assumptions": self.assumptions, "warnings": self.warnings}


def _option_dict(o: Option) -> dict[str, Any]:
    """An option as JSON: its fields, with the list and dict fields copied (a plan has ~1000 options; this is
    ~3x faster than the generic recursive to_dict)."""
    d = dict(vars(o))
    d["notes"], d["changed"] = list(o.notes), list(o.changed)
    d["config"], d["startup"] = dict(o.config), dict(o.startup)
    return d


def money(x: float | None) -> str:
    """Dollars with cents, or three significant figures below a dollar (per-token prices are fractions)."""
    if x is None:
        return "n/a"
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:.3g}"


def duration(hours: float) -> str:
    """Hours, or minutes below an hour ("0.0 h" helps nobody)."""
    return f"{hours:,.1f} h" if hours >= 1 else f"{max(1, round(hours * 60))} min"


def _describe(o: Option) -> str:
    where = f"{o.provider} {o.instance_type}" + (f" in {o.region}" if o.region else "")
    if o.nodes > 1:
        where = f"{o.nodes}x {where}"
    kind = "local" if o.target == "local" else ("spot" if o.spot else "on-demand")
    return f"{where} ({o.gpus}x {o.gpu}, {kind})"


class _Sizer:
    """(gpu, n) -> (GpuPlan, config, changed, keeps global batch, fits with margin), memoized."""

    def __init__(self, evaluate: Callable[[str, int], GpuPlan] | None, tune: Callable[[str, int], Any] | None):
        self.evaluate, self.tune = evaluate, tune
        self.memo: dict[tuple[str, int], tuple[GpuPlan, dict[str, Any], list[str], bool, bool]] = {}

    def __call__(self, gpu: str, n: int) -> tuple[GpuPlan, dict[str, Any], list[str], bool, bool]:
        key = (gpu, n)
        if key not in self.memo:
            if self.tune is not None:
                t = self.tune(gpu, n)
                self.memo[key] = (t.plan, dict(t.config), list(t.changed), t.keeps_global_batch, t.margin)
            else:
                assert self.evaluate is not None
                p = self.evaluate(gpu, n)
                self.memo[key] = (p, {}, [], True, p.fits is True)
        return self.memo[key]


def compare_options(evaluate: Callable[[str, int], GpuPlan] | None, offers: OfferSet, *,
                    local_profiles: Iterable[LocalProfile] = (), filters: Filters = Filters(),
                    spot: SpotAssumptions = SpotAssumptions(), tune: Callable[[str, int], Any] | None = None,
                    startup_assumptions_: StartupAssumptions = StartupAssumptions(), job: JobBytes = JobBytes(),
                    speed_error: float = DEFAULT_SPEED_ERROR) -> Comparison:
    filters.check()
    size = _Sizer(evaluate, tune)
    # Spot restarts are paid through the start-up model (provisioning, setup and weights again, per provider),
    # so the overhead factor here counts only the lost work and the checkpoint writes.
    spot_run = dataclasses.replace(spot, restart_hours=0.0)
    spot_factor = overhead_factor(spot_run)
    providers = None
    if filters.provider is not None:
        providers = {filters.provider} if isinstance(filters.provider, str) else set(filters.provider)
        providers = {p.lower() for p in providers}
    kinds = [False, True] if filters.spot is None else [bool(filters.spot)]
    sa = startup_assumptions_

    cloud = [o for o in offers.offers
             if (providers is None or o.provider in providers) and (filters.region is None or o.region == filters.region)]
    flags = price_flags(offers.offers, offers.sources)
    options: list[Option] = []
    startup_memo: dict[tuple[str, bool, float], tuple[float, dict[str, float]]] = {}  # -> (hours, parts)
    cannot_keep: set[int] = set()

    def make(target: str, provider: str, itype: str, region: str | None, zone: str | None, gpu: str, n: int,
             nodes: int, is_spot: bool, hourly: float, source: str, as_of: str, notes: list[str],
             flag: tuple[str, str]) -> Option:
        plan, config, changed, keeps, _margin = size(gpu, n)
        tps = plan.throughput.tokens_per_s if plan.throughput else 0.0
        over = spot_factor if is_spot else 1.0
        fits = plan.fits
        train = plan.time.hours * over if plan.time is not None and plan.time.hours is not None else None
        o = Option(target=target, provider=provider, instance_type=itype, region=region, gpu=plan.gpu, gpus=plan.gpus,
                   spot=is_spot, usd_per_hour=hourly, hours=train,
                   cost_usd=hourly * train if train is not None else None,
                   fits=fits, zone=zone, nodes=nodes, usd_per_gpu_hour=hourly / plan.gpus, tokens_per_s=tps,
                   usd_per_million_tokens=hourly * over / (tps * 3600 / 1e6) if tps > 0 else None,
                   overhead_factor=over, source=source, as_of=as_of, notes=list(notes), price_flag=flag[0],
                   price_note=flag[1], config=dict(config), changed=list(changed),
                   global_batch_tokens=plan.throughput.tokens_per_step if plan.throughput else None,
                   peak_reserved_gib=plan.memory.peak_reserved_gib, keeps_global_batch=keeps)
        if not keeps:
            cannot_keep.add(plan.gpus)
            grown = plan.throughput.tokens_per_step if plan.throughput else 0
            o.notes.append(f"cannot keep the job's global batch on {plan.gpus} GPUs (a whole number of sequences "
                           f"per GPU per step): it grows to {grown:,} tokens per step here")
        if train is not None:
            pre = spot.preemptions_per_hour * train if is_spot else 0.0
            key = (provider, is_spot, round(pre, 6))
            if key not in startup_memo:
                st = startup(provider, weights_bytes=job.weights_bytes, output_bytes=job.output_bytes,
                             dataset_tokens=job.dataset_tokens, expected_preemptions=pre, a=sa,
                             dataset_file_bytes=job.dataset_file_bytes)
                startup_memo[key] = (st.hours, st.parts_rounded)
            st_hours, parts = startup_memo[key]
            o.startup_hours = st_hours
            o.startup = dict(parts)  # each option owns its copy
            o.time_to_result_hours = train + st_hours
            billed = o.time_to_result_hours if target == "local" else billed_hours(provider, o.time_to_result_hours)
            o.cost_with_startup_usd = hourly * billed
        if not o.fits:  # never priced as if it could run
            o.cost_usd = o.cost_with_startup_usd = None
        return o

    def add_offer(o, nodes: int) -> None:
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
            flag = flags.get(o.key, {}).get("spot" if is_spot else "on-demand", ("normal", ""))
            options.append(make("cloud", o.provider, o.instance_type, o.region, o.zone if is_spot else None, o.gpu,
                                o.gpu_count * nodes, nodes, is_spot, total, o.source, o.as_of, notes, flag))

    for o in cloud:
        add_offer(o, 1)
    by_gpu: dict[str, list] = {}
    for o in cloud:
        by_gpu.setdefault(o.gpu, []).append(o)
    for gpu, group in by_gpu.items():
        if any(size(gpu, o.gpu_count)[0].fits for o in group):
            continue
        largest = max(o.gpu_count for o in group)
        for nodes in MULTI_NODE_COUNTS:
            for o in group:
                if o.gpu_count == largest:
                    add_offer(o, nodes)

    local_summaries = []
    profiles = list(local_profiles) if filters.include_local else []
    local_allowed = filters.spot is not True and (providers is None or "local" in providers)
    for p in profiles:
        plan, *_rest = size(p.gpu, p.gpu_count)
        if not local_allowed:
            continue
        if not plan.fits:
            continue  # listed in local_profiles as not fitting; never an option
        hourly = job_cost(p, 1.0).marginal_cost_usd
        if filters.max_hourly is not None and hourly > filters.max_hourly:
            continue
        basis = "electricity only (already owned)" if p.already_owned else \
            f"fully loaded at {p.utilisation:.0%} utilisation"
        options.append(make("local", "local", p.name, None, None, p.gpu, p.gpu_count, 1, False, hourly,
                            "local profile", "", [f"cost basis: {basis}"], ("normal", "")))

    _rank(options, filters)
    fallback = False
    if not any(o.rank_cost for o in options) and any(o.fits and not o.keeps_global_batch for o in options):
        _rank(options, filters, batch_may_grow=True)  # nothing keeps the global batch: rank what grows it
        fallback = any(o.rank_cost for o in options)
    ranked = sorted((o for o in options if o.rank_cost is not None), key=lambda o: o.rank_cost)
    rest = sorted((o for o in options if o.rank_cost is None),
                  key=lambda o: (not o.fits, _cost(o) if _cost(o) is not None else float("inf"),
                                 o.usd_per_million_tokens or float("inf")))
    options = ranked + rest
    rec, reason = _recommend(options, filters)

    for p in profiles:
        same = [o.usd_per_gpu_hour for o in options if o.target == "cloud" and not o.spot and o.gpu == p.gpu
                and o.price_flag == "normal"]
        ref = min(same) if same else None
        plan, _cfg, _ch, keeps, _m = size(p.gpu, p.gpu_count)
        ok = bool(plan.fits)
        hours = plan.time.hours if plan.time is not None and ok else None
        entry = summary(p, cloud_usd_per_gpu_hour=ref, job_hours=hours)
        entry["fits"] = plan.fits
        entry["keeps_global_batch"] = keeps
        entry["peak_reserved_gib"] = plan.memory.peak_reserved_gib
        entry["capacity_gib"] = plan.memory.capacity_gib
        if not ok:
            entry["note"] = (f"does not fit: needs {plan.memory.peak_reserved_gib:.1f} GiB per GPU, "
                             f"{p.gpu} has {plan.memory.capacity_gib:.0f}; not priced")
        local_summaries.append(entry)

    warnings = list(offers.warnings)
    if not any(o.fits for o in options):
        warnings.append("no option fits this job on any GPU considered; see the plan's suggestions")
    warnings += [f"local profile {e['name']} {e['note']}" for e in local_summaries if e.get("note")]
    if fallback:
        warnings.insert(0, "no fitting option keeps the job's global batch: the ranked options need more GPUs than "
                           "it has sequences per step, so the batch grows on them (see each option's "
                           "global_batch_tokens); raise grad_accum to compare the same training")
    elif cannot_keep:
        warnings.append(f"options on {', '.join(str(n) for n in sorted(cannot_keep))} GPUs cannot keep the job's "
                        "global batch (a whole number of sequences per GPU per step) and are not ranked; raise "
                        "grad_accum or batch_size to compare them")
    warnings = _order_warnings(warnings, rec)
    used = sorted({o.provider for o in options})
    # the spot model's restart time is replaced by the per-provider start-up (provisioning, setup, weights)
    assumptions = [dict(r, category="finance") for r in spot.assumptions() if not r["name"].startswith("restart")] + [
        {"name": "spot overhead factor (lost work and checkpoint writes)", "value": round(spot_factor, 4),
         "unit": "x", "category": "finance",
         "source": "first-order preemption model from the spot assumptions above; restarts are counted in start-up"},
        {"name": "recommendation: extra cost accepted to finish sooner", "value": PAY_FOR_SPEED,
         "unit": "fraction of the cheapest cost", "category": "finance",
         "source": "policy: among the cost/time Pareto options, the fastest within 10 % of the cheapest"},
        {"name": "range: estimator speed error (median)", "value": round(speed_error, 4), "unit": "fraction",
         "category": "estimator",
         "source": "median absolute error of the speed model on published measurements (estimator accuracy run)"},
    ] + startup_assumptions(sa, used) + confidence_assumptions()
    extras = _extras(options, rec, filters, spot, speed_error)
    return Comparison(options, rec, reason, offers.prices(), warnings, local_summaries, assumptions, extras)


def _cost(o: Option) -> float | None:
    return o.cost_with_startup_usd if o.cost_with_startup_usd is not None else o.cost_usd


def _time(o: Option) -> float | None:
    return o.time_to_result_hours if o.time_to_result_hours is not None else o.hours


def _flag_allowed(o: Option, f: Filters) -> bool:
    return o.price_flag == "normal" or (o.price_flag == "outlier" and f.allow_outlier) or \
        (o.price_flag == "stale" and f.allow_stale)


def _note(o: Option, text: str) -> None:
    if text not in o.notes:
        o.notes.append(text)


def _rank(options: list[Option], f: Filters, batch_may_grow: bool = False) -> None:
    eligible = []
    for o in options:
        if not o.fits:
            continue
        if not o.keeps_global_batch and not batch_may_grow:
            continue
        if not _flag_allowed(o, f):
            flag_opt = "--allow-outlier-prices" if o.price_flag == "outlier" else "--allow-stale-prices"
            _note(o, f"{o.price_flag} price ({o.price_note}); not ranked without {flag_opt}")
            continue
        if f.deadline_hours is not None and _time(o) is not None and _time(o) > f.deadline_hours:
            _note(o, f"misses the {f.deadline_hours:g} h deadline")
            continue
        if f.budget is not None and _cost(o) is not None and _cost(o) > f.budget:
            _note(o, f"over the {money(f.budget)} budget")
            continue
        eligible.append(o)
    if not eligible:
        return
    timed = all(_time(o) is not None for o in eligible)
    if timed:
        def cost_key(o): return (_cost(o), _time(o))
        def time_key(o): return (_time(o), _cost(o))
    else:  # no dataset size: $/million tokens and tokens/s
        def cost_key(o): return (o.usd_per_million_tokens or float("inf"), -o.tokens_per_s)
        def time_key(o): return (-o.tokens_per_s, o.usd_per_million_tokens or float("inf"))
    for i, o in enumerate(sorted(eligible, key=cost_key), 1):
        o.rank_cost = i
    for i, o in enumerate(sorted(eligible, key=time_key), 1):
        o.rank_time = i
    best_time = float("inf")
    for o in sorted(eligible, key=cost_key):
        t = time_key(o)[0]
        if t < best_time:
            o.pareto = True
            best_time = t


def _startup_phrase(o: Option) -> str:
    """'$X training + $Y start-up (provisioning, setup, 16 GB download ...)' when start-up matters."""
    if o.startup_hours is None or o.cost_with_startup_usd is None or o.cost_usd is None:
        return ""
    share = 1 - o.cost_usd / o.cost_with_startup_usd if o.cost_with_startup_usd else 0.0
    if share < STARTUP_SHARE_WORTH_SAYING:
        return ""
    return (f" ({share:.0%} of it is start-up: {duration(o.startup_hours)} of provisioning, setup and downloads "
            f"billed at {money(o.usd_per_hour)}/h)")


def _startup_changed(ranked: list[Option], best: Option) -> str:
    """A sentence when counting training time alone would have picked another option."""
    priced = [o for o in ranked if o.cost_usd is not None and o.cost_with_startup_usd is not None]
    if not priced or best.cost_with_startup_usd is None:
        return ""
    naive = min(priced, key=lambda o: (o.cost_usd, o.hours or 0.0))
    if naive is best or naive.cost_with_startup_usd <= best.cost_with_startup_usd:
        return ""
    return (f" Counting training alone, {_describe(naive)} would look cheapest at {money(naive.cost_usd)}, but "
            f"{duration(naive.startup_hours or 0.0)} of start-up (provisioning, setup, downloads) billed at "
            f"{money(naive.usd_per_hour)}/h makes it {money(naive.cost_with_startup_usd)}.")


def _passed_over(options: list[Option], best: Option, f: Filters) -> str:
    cheaper = [o for o in options if o.fits and o.keeps_global_batch == best.keeps_global_batch
               and not _flag_allowed(o, f) and _cost(o) is not None
               and _cost(best) is not None and _cost(o) < _cost(best)]
    if not cheaper:
        return ""
    c = min(cheaper, key=_cost)
    why = ("its price is far below the same offer elsewhere, which usually means no capacity or a stale quote"
           if c.price_flag == "outlier" else "its price list is out of date")
    more = f" (and {len(cheaper) - 1} more flagged offers)" if len(cheaper) > 1 else ""
    return (f" Passed over {_describe(c)} at {money(_cost(c))}: {why}{more}; "
            f"--allow-{c.price_flag}-prices ranks it.")


def _recommend(options: list[Option], f: Filters) -> tuple[Option | None, str]:
    ranked = [o for o in options if o.rank_cost is not None]
    if not ranked:
        if not any(o.fits for o in options):
            return None, "Nothing fits: no GPU type and count considered has enough memory for this job as given."
        if any(o.fits and not _flag_allowed(o, f) for o in options) and not any(
                o.fits and _flag_allowed(o, f) for o in options):
            return None, ("Every fitting offer has a flagged price (outlier or stale); pass --allow-outlier-prices "
                          "or --allow-stale-prices to rank them, or refresh the prices.")
        limits = [s for s, v in (("deadline", f.deadline_hours), ("budget", f.budget)) if v is not None]
        return None, f"No fitting option meets the {' and '.join(limits) or 'filters'}; relax it to see a recommendation."
    cheapest = min(ranked, key=lambda o: o.rank_cost)
    fastest = min(ranked, key=lambda o: o.rank_time)
    timed = _time(cheapest) is not None
    cost = _cost if timed else (lambda o: o.usd_per_million_tokens)
    front = [o for o in ranked if o.pareto and cost(o) <= cost(cheapest) * (1 + PAY_FOR_SPEED)]
    best = min(front or [cheapest], key=lambda o: o.rank_time)
    cond = []
    if f.deadline_hours is not None:
        cond.append(f"meeting the {f.deadline_hours:g} h deadline")
    if f.budget is not None:
        cond.append(f"within the {money(f.budget)} budget")
    cond_s = (" " + " and ".join(cond)) if cond else ""
    spot_note = ", incl. the expected cost of spot interruptions" if best.spot else ""
    passed = _startup_changed(ranked, best) + _passed_over(options, best, f)
    if timed:
        if best is cheapest:
            what = (f"{_describe(best)} is the cheapest fitting option with a reliable price{cond_s}: "
                    f"{money(_cost(best))} all-in, result in {duration(_time(best))}{spot_note}"
                    f"{_startup_phrase(best)}")
        else:
            extra = _cost(best) / _cost(cheapest) - 1
            what = (f"{_describe(best)} delivers the result in {duration(_time(best))} for {money(_cost(best))} "
                    f"all-in{cond_s}{spot_note}{_startup_phrase(best)}: {extra:.0%} more than the cheapest, "
                    f"{_describe(cheapest)} at {money(_cost(cheapest))}, which would take {duration(_time(cheapest))}")
        if fastest is best:
            return best, what + "; nothing fitting is faster." + passed
        return best, (what + f"; the fastest, {_describe(fastest)}, would deliver in {duration(_time(fastest))} "
                      f"but cost {money(_cost(fastest))} ({_cost(fastest) / _cost(best):.1f}x)." + passed)
    what = (f"{_describe(best)} costs {money(best.usd_per_million_tokens)} per million tokens{cond_s} "
            f"(no dataset size given, so no total)")
    if best is not cheapest:
        what += (f", {best.usd_per_million_tokens / cheapest.usd_per_million_tokens - 1:.0%} more than the cheapest, "
                 f"{_describe(cheapest)}, at {best.tokens_per_s / cheapest.tokens_per_s:.1f}x its speed")
    if fastest is best:
        return best, what + "; nothing fitting is faster." + passed
    return best, (what + f"; the fastest, {_describe(fastest)}, runs {fastest.tokens_per_s / best.tokens_per_s:.1f}x "
                  f"faster at {money(fastest.usd_per_million_tokens)} per million tokens." + passed)


def _ranges(o: Option, spot: SpotAssumptions, speed_error: float) -> dict[str, Any]:
    """[low, expected, high] cost and time to result of an option (see BAND_PER_MEDIAN_ERROR)."""
    if o.hours is None or o.startup_hours is None or o.cost_with_startup_usd is None:
        return {"cost_range_usd": None, "time_to_result_range_hours": None}
    band = min(0.9, BAND_PER_MEDIAN_ERROR * speed_error)
    train_lo, train_hi = o.hours * (1 - band), o.hours * (1 + band)
    if o.spot:  # twice the preemption rate at the high end
        hi_factor = overhead_factor(dataclasses.replace(spot, restart_hours=0.0,
                                                        preemptions_per_hour=2 * spot.preemptions_per_hour))
        train_hi *= hi_factor / o.overhead_factor
    st_hi = o.startup_hours * STARTUP_HIGH + (o.startup.get("spot_restarts", 0.0) * STARTUP_HIGH if o.spot else 0.0)
    t = [train_lo + o.startup_hours * STARTUP_LOW, o.time_to_result_hours, train_hi + st_hi]
    rate = o.cost_with_startup_usd / o.time_to_result_hours if o.time_to_result_hours else o.usd_per_hour
    cost = [rate * t[0], o.cost_with_startup_usd, rate * t[2]]
    return {"cost_range_usd": cost, "time_to_result_range_hours": t}


def _risks(o: Option, options: list[Option], f: Filters, spot: SpotAssumptions, speed_error: float) -> list[str]:
    out = []
    if o.spot and o.hours is not None:
        n = spot.preemptions_per_hour * o.hours
        count = f"about {n:.1f}" if n >= 0.1 else "fewer than 0.1"
        out.append(f"spot capacity: {count} interruptions expected over {duration(o.hours)}; each costs a "
                   f"restart (provisioning, setup, reload) and up to {spot.checkpoint_interval_hours * 60:.0f} min of "
                   "lost work; capacity may be unavailable when you launch")
    if o.fits is not True:
        out.append("memory is inside the estimator's error band: the run may run out of GPU memory")
    if o.price_flag != "normal":
        out.append(f"the price is flagged {o.price_flag}: {o.price_note}")
    if o.cost_usd is not None and o.cost_with_startup_usd and 1 - o.cost_usd / o.cost_with_startup_usd > 0.5:
        out.append("start-up is most of the cost: a prebuilt image or cached weights (--startup) changes the answer")
    out.append(f"speed estimate: typical error {speed_error:.0%} (published measurements); the time and cost "
               "ranges cover it")
    if o.changed:
        out.append("runs a tuned configuration (" + "; ".join(o.changed) + "); launch ships it, --as-written "
                   "keeps yours")
    return out


def _extras(options: list[Option], rec: Option | None, f: Filters, spot: SpotAssumptions,
            speed_error: float) -> dict[str, Any]:
    ranked = [o for o in options if o.rank_cost is not None]
    od = [o for o in ranked if o.target == "cloud" and not o.spot]
    local = [o for o in ranked if o.target == "local"]
    alternatives = {
        "cheapest_on_demand": min(od, key=lambda o: o.rank_cost) if od else None,
        "fastest": min(ranked, key=lambda o: o.rank_time) if ranked else None,
        "local": min(local, key=lambda o: o.rank_cost) if local else None,
    }
    out: dict[str, Any] = {"alternatives": alternatives}
    if rec is not None:
        out["recommendation"] = {**_ranges(rec, spot, speed_error), "risks": _risks(rec, options, f, spot, speed_error)}
    return out


def _order_warnings(warnings: list[str], rec: Option | None) -> list[str]:
    """What matters for this decision first: the recommended offer, then its provider, then the rest."""
    if rec is None:
        return warnings
    own = f"{rec.provider} {rec.instance_type} "

    def key(w: str) -> int:
        if w.startswith(own):
            return 0
        if w.startswith(f"{rec.provider} "):
            return 1
        return 2

    return sorted(warnings, key=key)
