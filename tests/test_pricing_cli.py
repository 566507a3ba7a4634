"""`gpuplan prices`: the listing contract, the snapshot builder command, and one-line input errors."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from pricing.snapshot import read_offers_file

CONTRACT = {"provider", "instance_type", "region", "zone", "gpu", "gpu_count", "usd_per_hour", "spot_usd_per_hour",
            "source", "as_of"}


def gpuplan(*args: str, env: dict | None = None, home=None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    if home is not None:  # isolate from the user's own price caches
        e.update(HOME=str(home), GPUPLAN_CACHE_DIR=str(home / "cache"))
        e.pop("SKY_RUNTIME_DIR", None)
    return subprocess.run([sys.executable, "-c", "from planner.cli import main; main()", *args],
                          capture_output=True, text=True, env=e, timeout=60)


def test_prices_json_contract(tmp_path):
    r = gpuplan("prices", "--gpu", "h100-80gb", "--provider", "aws", "--region", "us-east-1", "--format", "json",
                home=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(CONTRACT <= set(row) for row in rows)
    p5 = [x for x in rows if x["instance_type"] == "p5.48xlarge"][0]
    assert (p5["gpu"], p5["gpu_count"], p5["usd_per_hour"]) == ("H100", 8, 55.04)
    assert p5["spot_usd_per_hour"] is not None and p5["as_of"] and p5["source"].startswith("skypilot-catalog v8")
    per_gpu = [x["usd_per_gpu_hour"] for x in rows]
    assert per_gpu == sorted(per_gpu)  # cheapest per GPU-hour first


def test_prices_spot_only_csv_and_table(tmp_path):
    r = gpuplan("prices", "--gpu", "A100-40GB", "--spot-only", "--format", "csv", home=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and all(x["gpu"] == "A100" and x["spot_usd_per_hour"] for x in rows)
    t = gpuplan("prices", "--provider", "lambda", "--gpu", "H100", "--region", "us-east-1", home=tmp_path)
    assert t.returncode == 0 and "gpu_8x_h100_sxm5" in t.stdout and "31.92" in t.stdout


@pytest.mark.parametrize("args,start", [(["--provider", "oracle"], "error: provider: unknown provider"),
                                        (["--gpu", "H1000"], "error: gpu: unknown GPU"),
                                        (["--region", "us-east"], "error: region: no offers in region")])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, start):
    r = gpuplan("prices", *args, home=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(start) and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_build_snapshot_command_writes_dated_sourced_file(tmp_path, catalogs_dir):
    out = tmp_path / "offers.json"
    r = gpuplan("prices", "build-snapshot", "--from", str(catalogs_dir), "--as-of", "2025-09-01", "-o", str(out),
                home=tmp_path)
    assert r.returncode == 0, r.stderr
    data = read_offers_file(out)
    assert data.providers["gcp"] == {"source": "skypilot-catalog v8 006059e0f18a (gcp)", "as_of": "2025-09-01"}
    assert data.providers["azure"]["source"].startswith("skypilot-catalog v6 098741e70562")
    assert "no on-demand price" in r.stdout and "corrected to 8" in r.stdout
    bad = gpuplan("prices", "build-snapshot", "--from", str(catalogs_dir), "--as-of", "Sept", "-o", str(out),
                  home=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --as-of:")
    assert read_offers_file(out).providers["gcp"]["as_of"] == "2025-09-01"  # the good file is untouched


def test_stale_prices_warn_on_stderr(tmp_path, catalogs_dir):
    snap = tmp_path / "old.json"
    assert gpuplan("prices", "build-snapshot", "--from", str(catalogs_dir), "--as-of", "2001-01-01", "-o", str(snap),
                   home=tmp_path).returncode == 0
    r = gpuplan("prices", "--provider", "lambda", "--format", "json", env={"GPUPLAN_SNAPSHOT": str(snap)}, home=tmp_path)
    assert r.returncode == 0
    assert "warning: lambda prices are" in r.stderr and "days old (as of 2001-01-01" in r.stderr
    assert all(x["as_of"] == "2001-01-01" for x in json.loads(r.stdout))
