"""Validation of a saved plan document (`gpuplan report --from report.json`) before anything is rendered.

A document is read only if it is under MAX_DOCUMENT_BYTES, is strict JSON (no NaN/Infinity, no number that
overflows a float) and has the types the report relies on: a wrong one is reported as one line naming the key
path and the fix, never as a traceback from deep inside a template.

MAX_DOCUMENT_BYTES: a full catalog sweep (about 1,100 options) writes about 1 MB; 20 MB leaves room for every
provider's full catalogs and still refuses a runaway or hostile file in well under a second.
"""
from __future__ import annotations

import math
import os
from typing import Any

from train.spec import SpecError

MAX_DOCUMENT_BYTES = 20_000_000  # a plan document is ~1.5 MB; 20 MB leaves room for every provider x region
FIX = "give the report.json written by gpuplan report (or gpuplan plan --format json output)"

NUM, OPT_NUM, STR, OPT_STR, BOOL, INT, OPT_INT = "num", "num?", "str", "str?", "bool", "int", "int?"
OPTION_FIELDS: dict[str, str] = {
    "target": STR, "provider": STR, "instance_type": STR, "region": OPT_STR, "zone": OPT_STR, "gpu": STR,
    "gpus": INT, "nodes": OPT_INT, "spot": BOOL, "usd_per_hour": OPT_NUM, "usd_per_gpu_hour": OPT_NUM,
    "hours": OPT_NUM, "cost_usd": OPT_NUM, "tokens_per_s": OPT_NUM, "usd_per_million_tokens": OPT_NUM,
    "pareto": "bool?", "rank_cost": OPT_INT, "rank_time": OPT_INT, "overhead_factor": OPT_NUM, "source": OPT_STR,
    "as_of": OPT_STR, "startup_hours": OPT_NUM, "time_to_result_hours": OPT_NUM, "cost_with_startup_usd": OPT_NUM,
    "price_flag": OPT_STR, "global_batch_tokens": OPT_NUM,
}
PERIOD_FIELDS = ("per_run_usd", "per_month_usd", "per_year_usd", "horizon_usd", "capex_usd", "running_per_month_usd")


def _bad(path: str, problem: str, fix: str = FIX) -> SpecError:
    return SpecError(f"--from: {path}", problem, fix)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(path: str, v: Any, kind: str) -> None:
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if v is None:
        if optional:
            return
        raise _bad(path, "is missing or null")
    ok = {"num": _is_num(v), "str": isinstance(v, str), "bool": isinstance(v, bool),
          "int": isinstance(v, int) and not isinstance(v, bool)}[base]
    if not ok:
        want = {"num": "a finite number", "str": "text", "bool": "true or false", "int": "a whole number"}[base]
        raise _bad(path, f"must be {want}, not {type(v).__name__} {str(v)[:30]!r}")


def check_option(path: str, o: Any) -> None:
    if not isinstance(o, dict):
        raise _bad(path, "must be an object")
    for key, kind in OPTION_FIELDS.items():
        if key in o:
            _check(f"{path}.{key}", o[key], kind)
        elif not kind.endswith("?"):
            raise _bad(f"{path}.{key}", "is missing")
    fits = o.get("fits")
    if fits not in (True, False, "tight"):
        raise _bad(f"{path}.fits", 'must be true, false or "tight"')
    for key in ("hours", "cost_usd", "usd_per_hour"):
        if _is_num(o.get(key)) and o[key] < 0:
            raise _bad(f"{path}.{key}", "must not be negative")
    notes = o.get("notes")
    if notes is not None and not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        raise _bad(f"{path}.notes", "must be a list of text")
    for key in ("cost_range_usd", "time_to_result_range_hours"):
        if key in o and o[key] is not None:
            r = o[key]
            if not (isinstance(r, list) and len(r) == 3 and all(_is_num(x) for x in r)):
                raise _bad(f"{path}.{key}", "must be [low, expected, high] numbers")
    if "risks" in o and not (isinstance(o["risks"], list) and all(isinstance(x, str) for x in o["risks"])):
        raise _bad(f"{path}.risks", "must be a list of text")


MEMORY_FIELDS = ("peak_allocated_gib", "peak_reserved_gib", "capacity_gib", "headroom_gib")


def check_gpu_plan(path: str, g: Any) -> None:
    """A GpuPlan entry (`gpus[]`, or the document itself when the job named a GPU): what the memory section reads."""
    if not isinstance(g, dict):
        raise _bad(path, "must be an object")
    for key in ("gpu",):
        if g.get(key) is not None:
            _check(f"{path}.{key}", g[key], STR)
    if g.get("gpus") is not None:
        _check(f"{path}.gpus", g["gpus"], INT)
    mem = g.get("memory")
    if mem is not None:
        if not isinstance(mem, dict):
            raise _bad(f"{path}.memory", "must be an object")
        for key in MEMORY_FIELDS:
            if mem.get(key) is not None:
                _check(f"{path}.memory.{key}", mem[key], NUM)
        breakdown = mem.get("breakdown_gib")
        if breakdown is not None:
            if not isinstance(breakdown, dict):
                raise _bad(f"{path}.memory.breakdown_gib", "must be an object of GiB figures")
            for k, v in breakdown.items():
                _check(f"{path}.memory.breakdown_gib.{k}", v, OPT_NUM)
        band = mem.get("band_gib")
        if band is not None and not (isinstance(band, list) and len(band) == 2 and all(_is_num(x) for x in band)):
            raise _bad(f"{path}.memory.band_gib", "must be [low, high] numbers")
    if g.get("time") is not None and not isinstance(g["time"], dict):
        raise _bad(f"{path}.time", "must be an object")


def _list_of_dicts(path: str, v: Any) -> list:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise _bad(path, "must be a list of objects")
    return v


def check_schema(doc: Any, where: str = "--from") -> dict[str, Any]:
    """Raise SpecError unless ``doc`` has the shape and types of a plan document (errors name ``where``)."""
    try:
        return _check_schema(doc, where)
    except SpecError as exc:
        if where != "--from" and exc.field.startswith("--from"):
            raise SpecError(where + exc.field[len("--from"):], exc.problem, exc.fix) from None
        raise


def _check_schema(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SpecError(where, "is not a JSON object", FIX)
    missing = [k for k in ("options", "recommendation") if k not in doc]
    if missing:
        raise SpecError(where, f"is not a gpuplan plan document (no {', '.join(missing)})", FIX)
    if not isinstance(doc["options"], list):
        raise _bad("options", "must be a list")
    for i, o in enumerate(doc["options"]):
        check_option(f"options[{i}]", o)
    if doc["recommendation"] is not None:
        check_option("recommendation", doc["recommendation"])
    gpus = doc.get("gpus")
    if isinstance(gpus, list):
        for i, g in enumerate(gpus):
            check_gpu_plan(f"gpus[{i}]", g)
    elif gpus is not None and not isinstance(gpus, (int, str)):
        raise _bad("gpus", "must be a list of GPU plans")
    if "memory" in doc:
        check_gpu_plan("(plan)", doc)
    for key in ("job", "model", "prices", "accuracy", "alternatives", "global_batch", "periods"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise _bad(key, "must be an object")
    for provider, p in (doc.get("prices") or {}).items():
        if not isinstance(p, dict):
            raise _bad(f"prices.{provider}", "must be an object")
    for key in ("assumptions", "local_profiles", "sensitivity", "actuals"):
        _list_of_dicts(key, doc.get(key))
    for i, a in enumerate(doc.get("assumptions") or []):
        if not isinstance(a.get("name"), str):
            raise _bad(f"assumptions[{i}].name", "must be text")
    for i, r in enumerate(doc.get("sensitivity") or []):
        for key in ("cost_low_usd", "cost_high_usd"):
            if r.get(key) is not None:
                _check(f"sensitivity[{i}].{key}", r[key], NUM)
    for i, p in enumerate(doc.get("local_profiles") or []):
        for key in ("usd_per_gpu_hour", "utilisation", "break_even_utilisation", "marginal_cost_usd",
                    "loaded_cost_usd", "annual_fixed_usd", "energy_usd_per_gpu_hour"):
            if p.get(key) is not None:
                _check(f"local_profiles[{i}].{key}", p[key], NUM)
        _list_of_dicts(f"local_profiles[{i}].assumptions", p.get("assumptions"))
        for j, pt in enumerate(_list_of_dicts(f"local_profiles[{i}].curve", p.get("curve"))):
            for key in ("utilisation", "usd_per_gpu_hour"):
                _check(f"local_profiles[{i}].curve[{j}].{key}", pt.get(key), OPT_NUM)
        if p.get("gpu_count") is not None:
            _check(f"local_profiles[{i}].gpu_count", p["gpu_count"], INT)
    for key, alt in (doc.get("alternatives") or {}).items():
        if alt is not None:
            check_option(f"alternatives.{key}", alt)
    periods = doc.get("periods")
    if periods:
        _check("periods.runs_per_month", periods.get("runs_per_month"), NUM)
        scenarios = periods.get("scenarios")
        if not isinstance(scenarios, dict):
            raise _bad("periods.scenarios", "must be an object")
        for name, s in scenarios.items():
            if not isinstance(s, dict):
                raise _bad(f"periods.scenarios.{name}", "must be an object")
            for key in PERIOD_FIELDS:
                if s.get(key) is not None:
                    _check(f"periods.scenarios.{name}.{key}", s[key], NUM)
            cum = s.get("cumulative_usd")
            if cum is not None and not (isinstance(cum, list) and all(_is_num(x) for x in cum)):
                raise _bad(f"periods.scenarios.{name}.cumulative_usd", "must be a list of numbers")
            pm = s.get("payback_month")
            if pm is not None:
                _check(f"periods.scenarios.{name}.payback_month", pm, INT)
    return doc


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a saved plan document; every failure is one SpecError line. Read like every other file
    gpuplan takes (pricing.safe_read: a regular file under the size limit, strict JSON without NaN/Infinity,
    duplicate keys or deep nesting), then checked against the plan document's schema."""
    from pricing.safe_read import read_json

    return check_schema(read_json(path, "--from", MAX_DOCUMENT_BYTES, SpecError))
