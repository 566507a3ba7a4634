"""The offers file format (bundled snapshot, live-refresh cache) and the snapshot builder.

Format (JSON, columnar so it loads in a few milliseconds with the standard library):
  {"format": "gpuplan-offers/1", "built_at": ISO time, "providers": {p: {"source", "as_of"}},
   "columns": [...Offer fields...], "offers": [[...], ...], "dropped": [{...}], "warnings": [...]}
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pricing.errors import PricingInputError
from pricing.offer import COLUMNS, PROVIDERS, Offer, checked_offer, offer_to_row

FORMAT = "gpuplan-offers/1"
BUNDLED = Path(__file__).resolve().parent / "data" / "offers.json"


@dataclass
class OffersFile:
    offers: list[Offer]
    providers: dict[str, dict[str, str]]  # provider -> {"source", "as_of"}
    dropped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    built_at: str = ""


def dumps(data: OffersFile) -> str:
    doc = {
        "format": FORMAT,
        "built_at": data.built_at,
        "providers": data.providers,
        "columns": list(COLUMNS),
        "offers": [offer_to_row(o) for o in data.offers],
        "dropped": data.dropped,
        "warnings": data.warnings,
    }
    # one offer per line: small diffs when the lead commits a rebuilt snapshot
    head = json.dumps({k: v for k, v in doc.items() if k not in ("offers", "dropped")}, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r) for r in doc["offers"])
    drops = ",\n  ".join(json.dumps(d) for d in doc["dropped"])
    return f'{head},\n "offers": [\n  {rows}\n ],\n "dropped": [\n  {drops}\n ]\n}}\n'


MAX_OFFERS_FILE_BYTES = 64_000_000  # the bundled snapshot is ~0.2 MB; a full multi-cloud cache a few MB


def loads(text: str, origin: str = "offers file") -> OffersFile:
    """Parse and schema-check an offers file. A document that is not one raises ValueError (the caller skips
    the file with a warning); rows that fail the schema are skipped with one warning naming the first."""
    from pricing.safe_read import loads_json

    doc = loads_json(text, "offers file", origin)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{origin}: not a {FORMAT} file")
    providers_raw = doc.get("providers", {})
    if not isinstance(providers_raw, dict):
        raise ValueError(f"{origin}: 'providers' is not a mapping")
    providers: dict[str, dict[str, str]] = {}
    for p, meta in providers_raw.items():
        if p not in PROVIDERS or not isinstance(meta, dict) or not isinstance(meta.get("source"), str) \
                or not isinstance(meta.get("as_of"), str) or len(meta["source"]) > 1000 or len(meta["as_of"]) > 40:
            raise ValueError(f"{origin}: providers.{str(p)[:20]} is not {{source, as_of}} of a known provider")
        providers[p] = {"source": meta["source"], "as_of": meta["as_of"]}
    cols = doc.get("columns", list(COLUMNS))
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols) or len(set(cols)) != len(cols):
        raise ValueError(f"{origin}: 'columns' is not a list of distinct names")
    rows = doc.get("offers", [])
    if not isinstance(rows, list):
        raise ValueError(f"{origin}: 'offers' is not a list")
    offers: list[Offer] = []
    bad: list[str] = []
    for i, row in enumerate(rows):
        try:
            if isinstance(row, dict):
                data = row
            elif isinstance(row, list) and len(row) == len(cols):
                data = dict(zip(cols, row))
            else:
                raise ValueError(f"not a row of {len(cols)} values")
            offer = checked_offer(data)
            if offer.provider not in providers:
                raise ValueError(f"provider {offer.provider} has no entry under 'providers'")
            offers.append(offer)
        except ValueError as exc:
            bad.append(f"offer {i}: {exc}")
    dropped_raw = doc.get("dropped", [])
    dropped = [d for d in dropped_raw if _is_drop(d)] if isinstance(dropped_raw, list) else []
    warnings_raw = doc.get("warnings", [])
    warnings = [w for w in warnings_raw if isinstance(w, str) and len(w) <= 2000] if isinstance(warnings_raw, list) else []
    if not isinstance(dropped_raw, list) or len(dropped) != len(dropped_raw):
        warnings.append(f"{origin}: 'dropped' holds entries that are not {{provider, instance_type, region, what, "
                        "reason}}; those were skipped")
    if not isinstance(warnings_raw, list) or len(warnings) != len(warnings_raw):
        warnings.append(f"{origin}: 'warnings' holds entries that are not texts; those were skipped")
    if bad:
        warnings.append(f"{origin}: {len(bad)} of {len(rows)} offers are invalid and were skipped "
                        f"(first: {bad[0][:200]})")
    built_at = doc.get("built_at", "")
    return OffersFile(offers, providers, dropped, warnings, built_at if isinstance(built_at, str) else "")


def _is_drop(d: Any) -> bool:
    return (isinstance(d, dict) and all(isinstance(d.get(k), str) and len(d[k]) <= 2000
                                        for k in ("provider", "instance_type", "region", "what", "reason"))
            and (d.get("zone") is None or isinstance(d.get("zone"), str)))


def read_offers_file(path: Path) -> OffersFile:
    from pricing.safe_read import read_text

    return loads(read_text(path, "offers file", MAX_OFFERS_FILE_BYTES), str(path))


# ----------------------------------------------------------------------------------------------
# Builder: `gpuplan prices build-snapshot --from DIR`
# ----------------------------------------------------------------------------------------------
_README_ROW = re.compile(r"^\|\s*(?P<file>[^|]*vms\.csv)\s*\|\s*(?P<src>[^|]*)\|\s*(?P<commit>[0-9a-f]{7,40})\s*\|")


def read_provenance(catalog_dir: Path) -> dict[str, str]:
    """Relative catalog path -> source commit, from a README.md / PROVENANCE.md table beside the catalogs."""
    out: dict[str, str] = {}
    for name in ("PROVENANCE.md", "README.md"):
        p = catalog_dir / name
        if p.is_file() and p.stat().st_size <= 10_000_000:
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _README_ROW.match(line.strip())
                if m:
                    out.setdefault(m.group("file").strip(), m.group("commit"))
    return out


def find_catalogs(catalog_dir: Path) -> dict[str, Path]:
    """provider -> vms.csv, newest schema version first when a cloud appears twice (v8 over v6)."""
    found: dict[str, tuple[int, Path]] = {}
    for p in sorted(catalog_dir.rglob("vms.csv")):
        provider = p.parent.name
        if provider not in PROVIDERS:
            continue
        m = re.search(r"v(\d+)", str(p.relative_to(catalog_dir)))
        version = int(m.group(1)) if m else 0
        if provider not in found or version > found[provider][0]:
            found[provider] = (version, p)
    return {k: v[1] for k, v in sorted(found.items())}


def build_snapshot(catalog_dir: Path, *, as_of: str | None = None,
                   commits: dict[str, str] | None = None) -> OffersFile:
    """Read every `<cloud>/vms.csv` under catalog_dir, validate, aggregate to one row per type x region."""
    from pricing.skypilot_csv import read_catalog, version_of

    catalog_dir = Path(catalog_dir)
    if not catalog_dir.is_dir():
        raise PricingInputError("--from", f"{catalog_dir} is not a directory",
                                "point it at a folder holding <cloud>/vms.csv files")
    files = find_catalogs(catalog_dir)
    if not files:
        raise PricingInputError("--from", f"no <cloud>/vms.csv under {catalog_dir}",
                                f"expected e.g. {catalog_dir}/v8/aws/vms.csv")
    as_of = as_of or _dt.date.today().isoformat()
    try:
        _dt.date.fromisoformat(as_of)
    except ValueError:
        raise PricingInputError("--as-of", f"{as_of!r} is not a date", "use YYYY-MM-DD") from None
    provenance = read_provenance(catalog_dir)
    commits = commits or {}
    all_offers: list[Offer] = []
    dropped: list[dict[str, Any]] = []
    warnings: list[str] = []
    providers: dict[str, dict[str, str]] = {}
    for provider, path in files.items():
        rel = str(path.relative_to(catalog_dir))
        commit = commits.get(provider) or provenance.get(rel) or "unknown-commit"
        source = f"skypilot-catalog {version_of(path)} {commit[:12]} ({provider})"
        offers, drops, warns = read_catalog(path, provider, source, as_of)
        if not offers:
            raise PricingInputError("catalog", f"{path} gives no usable GPU offers ({len(drops)} rows dropped): "
                                               "empty, or not a SkyPilot vms.csv",
                                    "give the folder of SkyPilot catalogs, or remove that file")
        all_offers += offers
        dropped += [d.to_dict() for d in drops]
        warnings += warns
        providers[provider] = {"source": source, "as_of": as_of}
    built_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return OffersFile(all_offers, providers, dropped, warnings, built_at)


def drop_summary(dropped: list[dict[str, Any]]) -> list[str]:
    """Dropped rows grouped by provider and reason: 'aws: 8x row: no on-demand price ...'."""
    counts: dict[tuple[str, str, str], int] = {}
    for d in dropped:
        reason = re.sub(r"[\d.]+", "#", d["reason"]) if d["what"] == "spot" else d["reason"]
        k = (d["provider"], d["what"], reason)
        counts[k] = counts.get(k, 0) + 1
    return [f"{p}: {n}x {what}: {reason}" for (p, what, reason), n in sorted(counts.items())]
