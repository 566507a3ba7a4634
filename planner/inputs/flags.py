"""Ranges of the plan/report comparison flags, and flag combinations that contradict each other.

Every number is checked finite and inside a range (the range is in the message); upper bounds keep the
arithmetic downstream finite and the output meaningful. Sources of the bounds:
- --budget 1e9 USD: ~1000x the most expensive published fine-tuning runs; --max-hourly 1e5 USD/h: 100x the
  priciest single cloud instance (p5en.48xlarge ~$85/h, AWS price list 2025);
- --deadline-hours 1e6 h (~114 years); --runs-per-month 10000 (one run every 4 minutes);
- --other-use-hours 730: the hours of a month (8760 / 12); --top 10000 rows.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from train.spec import SpecError

# flag -> (kwargs key, low, high, low inclusive)
PLAN_FLAG_RANGES: dict[str, tuple[str, float, float, bool]] = {
    "--budget": ("budget", 0.0, 1e9, False),
    "--max-hourly": ("max_hourly", 0.0, 1e5, False),
    "--deadline-hours": ("deadline_hours", 0.0, 1e6, False),
    "--runs-per-month": ("runs_per_month", 0.0, 10_000.0, False),
    "--other-use-hours": ("other_use_hours", 0.0, 730.0, True),
    "--horizon-months": ("horizon_months", 1.0, 600.0, True),
    "--top": ("top", 1.0, 10_000.0, True),
}


def check_number(flag: str, value: Any, low: float, high: float, low_inclusive: bool = True) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(flag, f"expected a number, got {value!r}", f"give a number in {_range(low, high, low_inclusive)}")
    if not math.isfinite(value):
        raise SpecError(flag, f"must be a finite number, got {value}", f"give a number in {_range(low, high, low_inclusive)}")
    if value > high or value < low or (value == low and not low_inclusive):
        raise SpecError(flag, f"{value:g} is out of range", f"give a number in {_range(low, high, low_inclusive)}")


def _range(low: float, high: float, low_inclusive: bool) -> str:
    return f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"


def check_plan_flags(kwargs: Mapping[str, Any]) -> None:
    """Ranges of the comparison flags, then the contradictions between them (each decided below)."""
    for flag, (key, low, high, inclusive) in PLAN_FLAG_RANGES.items():
        if key in kwargs:
            check_number(flag, kwargs[key], low, high, inclusive)
    providers = [str(p).strip().lower() for p in (kwargs.get("provider") or ())]
    for p in providers:
        if len(p) > 40:
            raise SpecError("--provider", f"{p[:40]}... is not a provider", "use aws, gcp, azure, lambda, runpod or local")
    region = kwargs.get("region")
    if region is not None and (len(region) > 100 or not region.strip()):
        raise SpecError("--region", "not a region name", "run `gpuplan prices` to list regions")
    # Decided one by one:
    #   --no-local with --local-profile       refused: asks for local hardware and leaves it out
    #   --no-local with --provider local      refused: the only provider asked for is left out
    #   --provider local (only) with --spot   refused: local hardware has no spot market
    #   --other-use-hours without --runs-per-month  refused: it only shapes the derived utilisation
    #   --spot with --no-spot (any --X --no-X pair) refused in planner.cli (click keeps the last one silently)
    if kwargs.get("no_local") and kwargs.get("local_profile"):
        raise SpecError("--no-local", "contradicts --local-profile", "drop one of them")
    if kwargs.get("no_local") and "local" in providers:
        raise SpecError("--no-local", "contradicts --provider local", "drop one of them")
    if providers and set(providers) == {"local"} and kwargs.get("spot"):
        raise SpecError("--spot", "local hardware has no spot price, and --provider local leaves only local",
                        "drop --spot, or add a cloud --provider")
    if kwargs.get("other_use_hours") and kwargs.get("runs_per_month") is None:
        raise SpecError("--other-use-hours", "only counts with --runs-per-month", "add --runs-per-month N, or drop it")


def contradictory_switches(argv: Iterable[str]) -> str | None:
    """The first `--X ... --no-X` pair in argv (click would keep the last silently), or None."""
    seen: set[str] = set()
    for tok in argv:
        if tok == "--":
            break
        if not tok.startswith("--") or "=" in tok:
            continue
        name = tok[2:]
        others = {name[3:] if name.startswith("no-") else f"no-{name}"} | _OPPOSITES.get(name, set())
        for other in others:
            if other in seen:
                return f"--{other} and --{name}"
        seen.add(name)
    return None


# switch pairs not spelled --X/--no-X (gpuplan launch --spot/--on-demand)
_OPPOSITES = {"spot": {"on-demand"}, "on-demand": {"spot"}}


def check_spec_for_gpu(spec: Any) -> None:
    """Contradictions between the job and the GPU it names (only when --gpu/gpu: is given):
      attention flash on a GPU older than Ampere   refused: FlashAttention-2 runs on Ampere, Ada and Hopper GPUs
          only (Dao-AILab/flash-attention README, 2024); sdpa picks a kernel the GPU has
      parallel zero3 with stack torchtune   refused: torchtune shards with FSDP2 only, no DeepSpeed; fsdp is the
          equivalent sharding. (With the default stack the plan is allowed, as a plan for a DeepSpeed stack;
          the bundled trainer itself refuses zero3 when a run starts.)
    The GPU table's `bf16` column marks Ampere and newer (planner/gpus.py, vendor datasheets).
    """
    if spec.parallel == "zero3" and spec.stack == "torchtune":
        raise SpecError("parallel", f"zero3 is DeepSpeed, which the {spec.stack} stack does not run",
                        "use parallel fsdp (the same sharding), or give the --stack that runs DeepSpeed")
    if not spec.gpu or spec.attention != "flash":
        return
    from planner.gpus import get_gpu

    gpu = get_gpu(spec.gpu)
    if not gpu.bf16:
        raise SpecError("attention", f"FlashAttention-2 needs an Ampere or newer GPU, and {gpu.name} is older",
                        "use attention sdpa (or eager), or an Ampere+ GPU such as A100, L4, RTX4090, H100")
