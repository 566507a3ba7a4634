"""The offer catalog: the snapshot builder on the shared SkyPilot catalogs, validation, merging, staleness."""
from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from pricing.catalog import load_offers
from pricing.errors import PricingInputError
from pricing.gpus import canonical_gpu
from pricing.offer import Offer
from pricing.snapshot import BUNDLED, OffersFile, build_snapshot, dumps, loads


@pytest.fixture(scope="module")
def built(catalogs_dir):
    return build_snapshot(catalogs_dir, as_of="2026-11-01")


def _one(data, provider, itype, region):
    hits = [o for o in data.offers if (o.provider, o.instance_type, o.region) == (provider, itype, region)]
    assert len(hits) == 1, hits
    return hits[0]


def test_aws_p5_on_demand_is_the_catalog_price_and_spot_is_the_cheapest_zone(built):
    p5 = _one(built, "aws", "p5.48xlarge", "us-east-1")
    assert (p5.gpu, p5.gpu_count, p5.usd_per_hour) == ("H100", 8, 55.04)
    assert (p5.spot_usd_per_hour, p5.zone) == (14.246, "use1-az5")
    assert p5.source == "skypilot-catalog v8 e385a0d348ed (aws)" and p5.as_of == "2026-11-01"


def test_gcp_a3_highgpu_8g_is_host_row_plus_eight_gpu_row_summed_per_zone(built):
    o = _one(built, "gcp", "a3-highgpu-8g", "us-central1")
    assert o.usd_per_hour == pytest.approx(33.60609 + 9.46006)  # 8x H100 GPU row + a3-highgpu-8g host row
    assert o.spot_usd_per_hour == pytest.approx(23.9408 + 2.88933)
    assert (o.gpu, o.gpu_count) == ("H100", 8)
    mega = _one(built, "gcp", "a3-megagpu-8g", "us-central1")
    assert mega.gpu == "H100"  # catalog name H100-MEGA
    assert _one(built, "gcp", "a3-ultragpu-8g", "us-central1").gpu == "H200"


def test_lambda_8x_h100_and_runpod_names_are_canonical(built):
    lam = _one(built, "lambda", "gpu_8x_h100_sxm5", "us-east-1")
    assert (lam.gpu, lam.gpu_count, lam.usd_per_hour, lam.spot_usd_per_hour) == ("H100", 8, 31.92, None)
    runpod = {o.instance_type: o.gpu for o in built.offers if o.provider == "runpod"}
    assert runpod["4x_H100-SXM_SECURE"] == "H100" and runpod["3x_H200-SXM_SECURE"] == "H200"
    assert {o.gpu for o in built.offers if o.provider == "lambda"} >= {"RTXA6000", "GH200", "B200", "A10"}


def test_dropped_rows_name_the_known_catalog_problems(built):
    d = built.dropped
    p5e = [x for x in d if x["instance_type"] == "p5e.48xlarge"]
    assert len(p5e) == 8 and all(x["what"] == "row" and "no on-demand price" in x["reason"] for x in p5e)
    assert not [o for o in built.offers if o.instance_type == "p5e.48xlarge"]
    gcp_spot = [x for x in d if x["provider"] == "gcp" and x["what"] == "spot" and ">" in x["reason"]]
    assert any("A100-80GB" in x["reason"] for x in gcp_spot) and any("H200" in x["reason"] for x in gcp_spot)
    assert all(o.spot_usd_per_hour is None or o.spot_usd_per_hour < o.usd_per_hour for o in built.offers)
    nd = _one(built, "azure", "Standard_ND96isr_H100_v5", "eastus")
    assert nd.gpu_count == 8 and "corrected from 12 to 8" in nd.notes[0]
    assert nd.spot_usd_per_hour is None  # spot == on-demand placeholder
    assert all(o.spot_usd_per_hour is None for o in built.offers if o.provider == "runpod")
    assert any("implausible" in w or "flagged" in w for w in built.warnings if w.startswith("gcp a3-highgpu"))


def test_one_row_per_provider_instance_region(built):
    keys = [o.key for o in built.offers]
    assert len(keys) == len(set(keys))


def test_snapshot_file_round_trips_and_the_bundled_one_loads():
    data = loads(BUNDLED.read_text())
    assert len(data.offers) > 500 and set(data.providers) == {"aws", "gcp", "azure", "lambda", "runpod"}
    again = loads(dumps(data))
    assert again.offers == data.offers
    s = load_offers(user_caches=False)
    assert len(s.offers) == len(data.offers)


def test_gpu_aliases_and_filters():
    assert canonical_gpu("A100-40GB") == "A100" and canonical_gpu("h100-80gb") == "H100"
    assert canonical_gpu("RTX 4090") == "RTX4090" and canonical_gpu("H100-MEGA") == "H100"
    s = load_offers(provider="aws", gpu="h100-80gb", region="us-east-1", user_caches=False)
    assert s.offers and all((o.provider, o.gpu, o.region) == ("aws", "H100", "us-east-1") for o in s.offers)
    assert set(s.sources) == {"aws"}
    spot = load_offers(gpu="L4", spot_only=True, user_caches=False)
    assert spot.offers and all(o.spot_usd_per_hour is not None for o in spot.offers)


@pytest.mark.parametrize("kwargs,field", [({"provider": "oracle"}, "provider"), ({"gpu": "H1000"}, "gpu"),
                                          ({"region": "us-east"}, "region")])
def test_bad_filters_are_input_errors_naming_the_field(kwargs, field):
    with pytest.raises(PricingInputError) as err:
        load_offers(user_caches=False, **kwargs)
    assert err.value.one_line().startswith(f"{field}: ")


def test_newest_source_wins_per_offer_and_stale_prices_warn(tmp_path, monkeypatch):
    live = Offer("aws", "p5.48xlarge", "us-east-1", None, "H100", 8, 80.0, 192.0, 2048.0, 40.0, None,
                 "aws price list api (live)", "2099-01-01")
    (tmp_path / "aws.json").write_text(dumps(OffersFile([live], {"aws": {"source": live.source, "as_of": live.as_of}})))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = load_offers(provider="aws", gpu="H100", region="us-east-1", cache_directory=tmp_path,
                    today=dt.date(2099, 1, 2))
    p5 = [o for o in s.offers if o.instance_type == "p5.48xlarge"][0]
    assert p5.usd_per_hour == 40.0 and p5.source == live.source
    others = [o for o in s.offers if o.instance_type != "p5.48xlarge"]
    assert others and all(o.source.startswith("skypilot-catalog") for o in others)
    assert s.sources["aws"]["source"] == live.source and s.sources["aws"]["stale"] is False
    # the bundled rows that are still used are decades old by then: warned about
    s2 = load_offers(provider="lambda", user_caches=False, today=dt.date(2099, 1, 2))
    assert s2.sources["lambda"]["stale"] and any("days old" in w for w in s2.warnings)


def test_users_skypilot_catalog_cache_is_used_when_newer(tmp_path, monkeypatch, catalogs_dir):
    sky = tmp_path / "rt" / ".sky" / "catalogs" / "v8" / "lambda"
    sky.mkdir(parents=True)
    text = (catalogs_dir / "skypilot-v8" / "lambda" / "vms.csv").read_text().replace(",31.92,", ",29.00,")
    (sky / "vms.csv").write_text(text)
    future = time.time() + 400 * 86400
    os.utime(sky / "vms.csv", (future, future))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = load_offers(provider="lambda", gpu="H100", region="us-east-1", cache_directory=tmp_path / "none")
    o = [x for x in s.offers if x.instance_type == "gpu_8x_h100_sxm5"][0]
    assert o.usd_per_hour == 29.00 and "skypilot catalog cache" in o.source
    assert s.sources["lambda"]["as_of"] == dt.date.fromtimestamp(future).isoformat()


def test_builder_rejects_a_folder_without_catalogs(tmp_path):
    with pytest.raises(PricingInputError) as err:
        build_snapshot(tmp_path)
    assert err.value.field == "--from"
