"""Load cloud GPU offers for the planner: bundled snapshot + the user's SkyPilot cache + live refreshes.

Sources are merged by recency: per provider x instance type x region the newest `as_of` wins (on a tie: live
refresh > SkyPilot cache > bundled snapshot). Standard library only (the plan path must stay fast).
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pricing.errors import PricingInputError
from pricing.gpus import require_gpu
from pricing.offer import PROVIDERS, Offer
from pricing.snapshot import BUNDLED, OffersFile, read_offers_file

STALE_AFTER_DAYS = 30  # cloud list prices move a few times a year; a month-old catalog gets a warning
CLOUD_PROVIDERS = tuple(p for p in PROVIDERS if p != "local")
SKY_CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod")


@dataclass
class OfferSet:
    offers: list[Offer]
    sources: dict[str, dict[str, Any]]  # provider -> {"source", "as_of", "age_days", "stale"}
    warnings: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def prices(self) -> dict[str, dict[str, Any]]:
        """The `prices` block of a plan document."""
        return {p: dict(v) for p, v in self.sources.items()}


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int) -> OffersFile:
    return read_offers_file(Path(path))


def _read(path: Path) -> OffersFile:
    return _read_cached(str(path), path.stat().st_mtime_ns)


def _unreadable(path: Path, exc: BaseException, what: str) -> OffersFile:
    """A source that cannot be used: no offers, one warning (shown by every command that reads prices)."""
    reason = exc.one_line() if hasattr(exc, "one_line") else (getattr(exc, "strerror", None) or str(exc))
    reason = " ".join(str(reason).split())
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return OffersFile([], {}, [], [f"{path}: {what} unreadable ({reason}); skipped"])


def _present_but_not_file(path: Path) -> bool:
    """A directory, FIFO, socket or device where a price file is expected (never opened: a FIFO would block)."""
    return os.path.lexists(path) and not path.is_file()


# The catalog format SkyPilot 0.14 reads (~/.sky/catalogs/v8).
CURRENT_CATALOG_VERSION = 8


def sky_catalog_dirs() -> list[Path]:
    """Where SkyPilot 0.14 keeps its catalog cache (v8): $SKY_RUNTIME_DIR/.sky/catalogs/v8, ~/.sky/catalogs/v8."""
    dirs = []
    runtime = os.environ.get("SKY_RUNTIME_DIR")
    if runtime:
        dirs.append(Path(runtime).expanduser() / ".sky" / "catalogs" / "v8")
    dirs.append(Path(os.path.expanduser("~")) / ".sky" / "catalogs" / "v8")
    return dirs


def _sky_cache(newest: dict[str, str]) -> list[tuple[int, OffersFile]]:
    """Parse the user's SkyPilot catalogs that are newer than what we already have for that provider."""
    from pricing.skypilot_csv import read_catalog

    out = []
    for d in sky_catalog_dirs():
        for provider in SKY_CLOUDS:
            path = d / provider / "vms.csv"
            if _present_but_not_file(path):
                out.append((1, _unreadable(path, OSError("not a regular file"), "SkyPilot catalog")))
                continue
            if not path.is_file():
                continue
            as_of = _dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
            if newest.get(provider, "") >= as_of:
                continue
            source = f"skypilot catalog cache {path}"
            try:
                offers, dropped, warnings = read_catalog(path, provider, source, as_of)
            except (OSError, ValueError, KeyError, RecursionError) as exc:
                out.append((1, _unreadable(path, exc, "SkyPilot catalog")))
                continue
            newest[provider] = as_of
            out.append((1, OffersFile(offers, {provider: {"source": source, "as_of": as_of}},
                                      [d_.to_dict() for d_ in dropped], warnings)))
        break_after = any(p for p in (d / c / "vms.csv" for c in SKY_CLOUDS) if p.is_file())
        if break_after:  # SKY_RUNTIME_DIR, when set and populated, is where SkyPilot itself looks
            break
    return out


def _live_cache(cache_directory: Path | None) -> list[tuple[int, OffersFile]]:
    from pricing.cache import cache_dir

    d = cache_directory or cache_dir()
    out = []
    for provider in CLOUD_PROVIDERS:
        path = d / f"{provider}.json"
        if _present_but_not_file(path):
            out.append((2, _unreadable(path, OSError("not a regular file"), "live price cache")))
        elif path.is_file():
            try:
                out.append((2, _read(path)))
            except (OSError, ValueError, RecursionError) as exc:
                out.append((2, _unreadable(path, exc, "live price cache")))
    return out


def _check_provider(provider: str | None) -> str | None:
    if provider is None:
        return None
    p = provider.strip().lower()
    if p not in PROVIDERS:
        raise PricingInputError("provider", f"unknown provider {provider!r}", f"use one of {', '.join(PROVIDERS)}")
    return p


def age_days(as_of: str, today: _dt.date | None = None) -> int | None:
    try:
        d = _dt.date.fromisoformat(as_of[:10])
    except ValueError:
        return None
    return ((today or _dt.date.today()) - d).days


def load_offers(provider: str | list[str] | None = None, gpu: str | None = None, region: str | None = None, *,
                spot_only: bool = False, snapshot: Path | None = None, user_caches: bool = True,
                cache_directory: Path | None = None, today: _dt.date | None = None) -> OfferSet:
    """Offers matching the filters, merged across sources, with per-provider source/as_of/staleness."""
    providers = None
    if provider is not None:
        providers = {_check_provider(p) for p in ([provider] if isinstance(provider, str) else provider)}
    want_gpu = require_gpu(gpu) if gpu else None

    files: list[tuple[int, OffersFile]] = []
    snap = Path(snapshot or os.environ.get("GPUPLAN_SNAPSHOT") or BUNDLED)  # env: pin another snapshot file
    if _present_but_not_file(snap):
        files.append((0, _unreadable(snap, OSError("not a regular file"), "price snapshot")))
    elif snap.is_file():
        try:
            files.append((0, _read(snap)))
        except (OSError, ValueError, RecursionError) as exc:
            files.append((0, _unreadable(snap, exc, "price snapshot")))
    else:
        files.append((0, _unreadable(snap, OSError("missing"), "price snapshot")))
    if user_caches:
        files += _live_cache(cache_directory)
        newest: dict[str, str] = {}
        for _, f in files:
            for p, meta in f.providers.items():
                newest[p] = max(newest.get(p, ""), meta.get("as_of", ""))
        files += _sky_cache(newest)

    best: dict[tuple[str, str, str], tuple[tuple[str, int], Offer]] = {}
    warnings: list[str] = []
    dropped: list[dict[str, Any]] = []
    used: dict[str, dict[str, tuple[str, int]]] = {}  # provider -> source -> rank
    for priority, f in files:
        # provider-specific warnings follow the --provider filter; a source that could not be read is shown on
        # every command that reads prices (its first word is a path, not a provider)
        warnings += [w for w in f.warnings if providers is None or w.split(" ", 1)[0] in providers
                     or w.split(" ", 1)[0] not in PROVIDERS]
        dropped += [d for d in f.dropped if providers is None or d.get("provider") in providers]
        for o in f.offers:
            rank = (o.as_of, priority)
            cur = best.get(o.key)
            if cur is None or rank > cur[0]:
                best[o.key] = (rank, o)
    offers = []
    for rank, o in best.values():
        used.setdefault(o.provider, {})[o.source] = max(rank, used.get(o.provider, {}).get(o.source, rank))
        if providers is not None and o.provider not in providers:
            continue
        if want_gpu is not None and o.gpu != want_gpu:
            continue
        if region is not None and o.region != region:
            continue
        if spot_only and o.spot_usd_per_hour is None:
            continue
        offers.append(o)
    if region is not None and not offers:
        known = sorted({o.region for _, o in best.values() if providers is None or o.provider in providers})
        if region not in known:
            import difflib

            close = difflib.get_close_matches(region, known, n=3)
            raise PricingInputError("region", f"no offers in region {region!r}",
                                    f"did you mean {', '.join(close)}?" if close else "run `gpuplan prices` to list regions")
    offers.sort(key=lambda o: (o.provider, o.gpu, o.gpu_count, o.instance_type, o.region))

    sources: dict[str, dict[str, Any]] = {}
    for p in sorted(used):
        if providers is not None and p not in providers:
            continue
        src, (as_of, _) = max(used[p].items(), key=lambda kv: kv[1])
        age = age_days(as_of, today)
        stale = age is None or age > STALE_AFTER_DAYS
        sources[p] = {"source": src, "as_of": as_of, "age_days": age, "stale": stale}
        if len(used[p]) > 1:
            sources[p]["also"] = sorted(s for s in used[p] if s != src)
        version = re.search(r"catalog v(\d+)", src)
        if version and int(version.group(1)) < CURRENT_CATALOG_VERSION:
            # as_of is when the snapshot was built; an older catalog format means older prices than that
            sources[p]["note"] = f"older SkyPilot catalog (v{version.group(1)}); prices may predate as_of"
            warnings.append(f"{p} prices come from an older SkyPilot catalog (v{version.group(1)}, current v"
                            f"{CURRENT_CATALOG_VERSION}) and may be out of date; check them before relying on them")
        if stale:
            warnings.append(f"{p} prices are {age} days old (as of {as_of}, {src}); "
                            f"run `gpuplan prices refresh --provider {p}` or rebuild the snapshot"
                            if age is not None else f"{p} prices have no valid date ({src})")
    return OfferSet(offers, sources, warnings, dropped)
