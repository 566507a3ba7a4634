"""Read SkyPilot-format `vms.csv` price catalogs (v8 aws/gcp/lambda/runpod schemas and the old v6 azure one).

Standard library only: this also reads the user's own SkyPilot catalog cache on the plan path.
The schema is detected from the header, not from the version folder. GCP prices a GPU VM as a GPU-only row
plus the matching host-VM row in the same zone (SkyPilot's gcp_catalog does the same sum).
"""
from __future__ import annotations

import ast
import csv
import io
import math
import re
from pathlib import Path

from pricing.gpus import canonical_gpu, gpu_memory_gib
from pricing.offer import Dropped, Offer
from pricing.validate import ZoneRow, offers_from_rows, spread_warnings

# GCP GPU-only row (accelerator, count) -> host machine types it attaches to (GCP "GPU machine types" docs).
# T4/V100 attach to N1 VMs of any size; the catalogs carry no n1 host rows, so those GPUs cannot be priced.
_GCP_FIXED = {"A100": "a2-highgpu-{n}g", "A100-80GB": "a2-ultragpu-{n}g", "H100": "a3-highgpu-{n}g"}
_GCP_SINGLE = {"H100-MEGA": "a3-megagpu-8g", "H200": "a3-ultragpu-8g", "B200": "a4-highgpu-8g"}
_GCP_L4 = {1: ("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32"),
           2: ("g2-standard-24",), 4: ("g2-standard-48",), 8: ("g2-standard-96",)}


def gcp_host_types(accelerator: str, count: int) -> tuple[str, ...]:
    if accelerator == "A100" and count == 16:
        return ("a2-megagpu-16g",)
    if accelerator in _GCP_FIXED:
        return (_GCP_FIXED[accelerator].format(n=count),)
    if accelerator in _GCP_SINGLE:
        return (_GCP_SINGLE[accelerator],) if count == 8 else ()
    if accelerator == "L4":
        return _GCP_L4.get(count, ())
    return ()


MAX_CATALOG_BYTES = 256_000_000  # SkyPilot's full aws vms.csv is ~20 MB (2025); refuse anything absurd
MAX_FIELD_CHARS = 256  # longest real field is GpuInfo (~150 characters); instance types are < 40


def _num(value: str | None) -> float | None:
    """A catalog number; None when empty, unparsable or not finite (an `inf` price is no price)."""
    if not isinstance(value, str) or value.strip() in ("", "nan", "None") or len(value) > 40:
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _gpu_count(value: str | None) -> int | None:
    f = _num(value)
    if f is None or not f.is_integer() or not 0 < f <= 1024:
        return None
    return int(f)


def _read_records(path: Path) -> tuple[list[str], list[dict]]:
    """Header and rows of a catalog file: a regular UTF-8 file under the size limit, rows with over-long fields
    rejected (the csv module's own limit is 128 kB; SkyPilot's fields are < 256 characters)."""
    from pricing.errors import PricingInputError
    from pricing.safe_read import read_text

    text = read_text(path, "catalog", MAX_CATALOG_BYTES)
    if "\x00" in text:
        raise PricingInputError("catalog", f"{path} contains NUL bytes (a binary file?)", "give a SkyPilot vms.csv")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        records = list(reader)
    except csv.Error as exc:
        raise PricingInputError("catalog", f"{path} is not a readable CSV ({exc})", "give a SkyPilot vms.csv") from None
    if any(len(h) > MAX_FIELD_CHARS for h in header):
        raise PricingInputError("catalog", f"{path} has a header field over {MAX_FIELD_CHARS} characters",
                                "give a SkyPilot vms.csv")
    return header, records


def _record_ok(rec: dict) -> bool:
    """A row whose every field is text under the length limit (short rows leave None, long rows a list)."""
    return None not in rec and all(v is None or (isinstance(v, str) and len(v) <= MAX_FIELD_CHARS)
                                   for v in rec.values())


def _gpuinfo_mib(text: str | None) -> float | None:
    if not text or "{" not in text or len(text) > MAX_FIELD_CHARS:
        return None
    try:
        info = ast.literal_eval(text)
        mib = float(info["Gpus"][0]["MemoryInfo"]["SizeInMiB"])
    except (ValueError, SyntaxError, KeyError, IndexError, TypeError, MemoryError, RecursionError):
        return None
    return mib if math.isfinite(mib) else None


def _memory(gpu: str, gpuinfo: str | None) -> float | None:
    known = gpu_memory_gib(gpu)
    if known is not None:
        return float(known)
    mib = _gpuinfo_mib(gpuinfo)
    return round(mib / 1024, 1) if mib and mib >= 1024 else None


def detect_schema(header: list[str]) -> str:
    cols = set(header)
    if "Generation" in cols:
        return "azure-v6"
    if "Arch" in cols:
        return "aws-v8"
    if cols >= {"InstanceType", "AcceleratorName", "Region", "AvailabilityZone"} and header[1] == "vCPUs":
        return "gcp-v8"
    if "AvailabilityZone" not in cols:
        return "lambda-v8"
    return "runpod-v8"


def read_zone_rows(path: Path, provider: str) -> tuple[list[ZoneRow], list[Dropped]]:
    """Zone-level rows of one catalog file (GPU rows only), before validation."""
    header, all_records = _read_records(path)
    records = [r for r in all_records if _record_ok(r)]
    malformed = [Dropped(provider, "?", "?", None, "row", f"malformed row (a field over {MAX_FIELD_CHARS} "
                                                            "characters, or too many/few fields)")
                 for r in all_records if not _record_ok(r)]
    schema = detect_schema(list(header))
    if schema == "gcp-v8":
        rows_, dropped_ = _gcp_rows(records, provider)
        return rows_, malformed + dropped_
    rows: list[ZoneRow] = []
    dropped: list[Dropped] = list(malformed)
    for rec in records:
        itype = rec.get("InstanceType") or ""
        region = rec.get("Region") or ""
        zone = rec.get("AvailabilityZone") or None
        accel = rec.get("AcceleratorName") or ""
        count = _gpu_count(rec.get("AcceleratorCount"))
        if not accel or not count:
            if accel or itype:
                dropped.append(Dropped(provider, itype, region, zone, "row",
                                       "no accelerator name/count (fractional or unlisted GPU)"))
            continue
        gpu = canonical_gpu(accel)
        if gpu is None:
            dropped.append(Dropped(provider, itype, region, zone, "row", f"unknown GPU name {accel!r}"))
            continue
        rows.append(ZoneRow(provider, itype, region, zone, gpu, count, _num(rec.get("vCPUs")),
                            _num(rec.get("MemoryGiB")), _num(rec.get("Price")), _num(rec.get("SpotPrice"))))
    return rows, dropped


def _gcp_rows(records: list[dict], provider: str) -> tuple[list[ZoneRow], list[Dropped]]:
    hosts: dict[tuple[str, str], dict] = {}
    gpus: list[dict] = []
    for rec in records:
        if rec.get("InstanceType"):
            hosts[(rec["InstanceType"], rec.get("AvailabilityZone") or "")] = rec
        elif rec.get("AcceleratorName"):
            gpus.append(rec)
    rows: list[ZoneRow] = []
    dropped: list[Dropped] = []
    for g in gpus:
        accel = g["AcceleratorName"]
        count = _gpu_count(g.get("AcceleratorCount")) or 0
        zone = g.get("AvailabilityZone") or ""
        region = g.get("Region") or ""
        gpu = canonical_gpu(accel)
        label = f"{accel} x{count}"
        if gpu is None:
            dropped.append(Dropped(provider, label, region, zone, "row", f"unknown GPU name {accel!r}"))
            continue
        host_types = gcp_host_types(accel, count)
        if not host_types:
            dropped.append(Dropped(provider, label, region, zone, "row",
                                   "no host machine type known for this GPU count"
                                   + (" (T4/V100 attach to n1 VMs, which the catalog does not price)"
                                      if accel in ("T4", "V100") else "")))
            continue
        gprice, gspot = _num(g.get("Price")), _num(g.get("SpotPrice"))
        matched = False
        for ht in host_types:
            h = hosts.get((ht, zone))
            if h is None:
                continue
            matched = True
            hprice, hspot = _num(h.get("Price")), _num(h.get("SpotPrice"))
            notes: list[str] = [f"price = {count}x {accel} GPU row + {ht} host row, summed per zone"]
            spot = None
            if gspot is not None and hspot is not None:
                if gprice is not None and gspot > gprice:
                    dropped.append(Dropped(provider, ht, region, zone, "spot",
                                           f"GPU spot {gspot:g} > on-demand {gprice:g} ({label})"))
                else:
                    spot = round(gspot + hspot, 5)
            price = None if gprice is None or hprice is None else round(gprice + hprice, 5)
            rows.append(ZoneRow(provider, ht, region, zone, gpu, count, _num(h.get("vCPUs")),
                                _num(h.get("MemoryGiB")), price, spot, notes))
        if not matched:
            dropped.append(Dropped(provider, "/".join(host_types), region, zone, "row",
                                   f"{label} GPU row has no matching host row in this zone"))
    return rows, dropped


def read_catalog(path: Path, provider: str, source: str, as_of: str
                 ) -> tuple[list[Offer], list[Dropped], list[str]]:
    """Validated offers (one per instance type x region) from one catalog file, plus what was dropped."""
    zone_rows, dropped = read_zone_rows(path, provider)
    offers, bad = offers_from_rows(zone_rows, source, as_of)
    dropped += bad
    warnings = spread_warnings(offers)
    return offers, dropped, warnings


def version_of(path: Path) -> str:
    """'v8' from .../skypilot-v8/aws/vms.csv or ~/.sky/catalogs/v8/aws/vms.csv."""
    for part in reversed(path.parts):
        m = re.search(r"v(\d+)$", part)
        if m:
            return f"v{m.group(1)}"
    return "v?"
