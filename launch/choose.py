"""Pick the option to launch from a plan document (`planner.plan.plan_job(...)`, the JSON `gpuplan plan` prints).

The plan already ranks every way to run the job; launch never re-prices. Without a choice it takes the plan's
recommendation when that is for the requested target, else the cheapest fitting option of that target. Choices
the user makes (provider, region, GPU, GPU count, spot) filter the options first. A choice that leaves nothing
is bad input: a `SpecError` naming the flag and what to change.
"""
from __future__ import annotations

from typing import Any, Mapping

from train.spec import SpecError

TARGETS = ("cloud", "local")


def _per_node(opt: Mapping[str, Any]) -> int:
    return max(1, int(opt.get("gpus") or 1) // max(1, int(opt.get("nodes") or 1)))


def check_fits(plan: Mapping[str, Any], gpus_per_node: int | None) -> None:
    """With a fixed GPU type and count (--gpu and --gpus), refuse a job the plan says does not fit there."""
    if gpus_per_node is None or plan.get("fits") is not False:
        return
    gpu, gpus = plan.get("gpu"), plan.get("gpus")
    raise _no_fit(plan, f"the job does not fit on {gpus}x {gpu}")


def _no_fit(plan: Mapping[str, Any], problem: str) -> SpecError:
    mem = plan.get("memory") or {}
    need, have = mem.get("peak_reserved_gib"), mem.get("capacity_gib")
    if isinstance(need, (int, float)) and isinstance(have, (int, float)):
        problem += f" (needs {need:.1f} GiB per GPU, has {have:.1f})"
    fix = "choose a larger GPU or more GPUs (see `gpuplan plan`)"
    fitting = [s for s in plan.get("suggestions") or [] if s.get("fits")]
    min_gpus = (plan.get("limits") or {}).get("min_gpus")
    if fitting:
        fix = f"try: {fitting[0].get('change')}"
    elif min_gpus:
        fix = f"it needs at least {min_gpus} {plan.get('gpu')}; choose a larger GPU or more nodes"
    return SpecError("--gpu", problem, fix)


def _matches(opt: Mapping[str, Any], target: str, provider: str | None, region: str | None,
             gpu: str | None, gpus_per_node: int | None, spot: bool | None) -> bool:
    if opt.get("target") != target or not opt.get("fits", False):
        return False
    if provider is not None and opt.get("provider") != provider:
        return False
    if region is not None and opt.get("region") != region:
        return False
    if gpu is not None and str(opt.get("gpu", "")).lower() != gpu.lower():
        return False
    if gpus_per_node is not None and _per_node(opt) != gpus_per_node:
        return False
    if spot is not None and bool(opt.get("spot")) != spot:
        return False
    return True


def _cost_key(opt: Mapping[str, Any]) -> tuple[bool, float, float]:
    """Normal prices before flagged ones (outlier/stale), then the cost with start-up (the plan's ranking)."""
    cost = opt.get("cost_with_startup_usd")
    if cost is None:
        cost = opt.get("cost_usd")
    return (opt.get("price_flag", "normal") != "normal", float("inf") if cost is None else float(cost),
            float(opt.get("usd_per_hour") or float("inf")))


def choose_option(plan: Mapping[str, Any], target: str, *, provider: str | None = None,
                  region: str | None = None, gpu: str | None = None, gpus_per_node: int | None = None,
                  spot: bool | None = None) -> dict[str, Any] | None:
    """The option to launch, as a dict of the plan's Option fields.

    Returns None only for target local when the plan has no local options at all (no cost profile: a
    direct run still works). Raises SpecError when the user's filters leave no fitting option.
    """
    if target not in TARGETS:
        raise SpecError("--target", f"{target!r} is not one of {', '.join(TARGETS)}", "use cloud or local")
    check_fits(plan, gpus_per_node if gpu else None)
    options = [o for o in plan.get("options") or [] if o.get("target") == target]
    if target == "local" and not options:
        return None
    rec = plan.get("recommendation")
    if rec and _matches(rec, target, provider, region, gpu, gpus_per_node, spot):
        return dict(rec)
    chosen = [o for o in options if _matches(o, target, provider, region, gpu, gpus_per_node, spot)]
    if chosen:
        return dict(min(chosen, key=_cost_key))
    raise _nothing_left(plan, options, target, provider, region, gpu, gpus_per_node, spot)


def _nothing_left(plan: Mapping[str, Any], options: list[Mapping[str, Any]], target: str, provider: str | None,
                  region: str | None, gpu: str | None, gpus_per_node: int | None, spot: bool | None) -> SpecError:
    """Name the first filter that emptied the list, so the message says which flag to change."""
    if not options:
        return SpecError("--target", f"the plan has no {target} options for this job",
                         "check `gpuplan plan` output (prices, local profiles)")
    if gpu is not None and not any(str(o.get("gpu", "")).lower() == gpu.lower() and o.get("fits") for o in options):
        if any(str(o.get("gpu", "")).lower() == gpu.lower() for o in options) or plan.get("gpu"):
            return _no_fit(plan if plan.get("gpu") else {"gpu": gpu},
                           f"the job does not fit on {gpu} in any {target} option")
    fitting = [o for o in options if o.get("fits")]
    if not fitting:
        return SpecError("--gpu", f"no {target} option fits this job in GPU memory",
                         "see `gpuplan plan` suggestions (more GPUs, shorter seq_len, qlora)")
    steps: list[tuple[str, Any, str]] = [
        ("--provider", provider, "provider"), ("--region", region, "region"), ("--gpu", gpu, "gpu"),
        ("--gpus", gpus_per_node, "gpus"), ("--spot", spot, "spot"),
    ]
    pool = fitting
    for flag, value, key in steps:
        if value is None:
            continue
        if key == "gpu":
            kept = [o for o in pool if str(o.get("gpu", "")).lower() == str(value).lower()]
            seen = sorted({str(o.get("gpu")) for o in pool})
        elif key == "gpus":
            kept = [o for o in pool if _per_node(o) == value]
            seen = sorted({str(_per_node(o)) for o in pool}, key=int)
        elif key == "spot":
            kept = [o for o in pool if bool(o.get("spot")) == value]
            seen = []
        else:
            kept = [o for o in pool if o.get(key) == value]
            seen = sorted({str(o.get(key)) for o in pool})
        if not kept:
            shown = ", ".join(seen[:8]) + (" ..." if len(seen) > 8 else "")
            if key == "spot":
                what = "spot" if value else "on-demand"
                return SpecError(flag, f"no fitting {target} option is {what} with these choices",
                                 "drop --spot (no spot offer here)" if value else "use --spot")
            return SpecError(flag, f"no fitting {target} option with {key} {value}", f"choose one of: {shown}")
        pool = kept
    return SpecError("--target", f"no {target} option matches the choices given", "relax --provider/--region/--gpu")
