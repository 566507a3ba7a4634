"""Live refresh through the real boto3 / google-cloud clients against loopback servers.

EC2 spot prices come from moto in server mode (seeded: moto itself answers a 0.00001 placeholder); the Price
List API and the Cloud Billing / Compute REST APIs come from a small HTTP server of this file, answering
with responses of the real shape. Every failure mode must leave the previous catalog byte-for-byte intact.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pricing.catalog import load_offers
from pricing.errors import RefreshError
from pricing.refresh import refresh

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def price_item(itype: str, region: str, usd: str, vcpu: str, memory: str, gpu: str) -> str:
    """A Price List GetProducts item as AWS returns it: a JSON *string*."""
    sku = f"SKU{abs(hash((itype, region))) % 10**8}"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": itype, "regionCode": region, "location": "US East (N. Virginia)", "vcpu": vcpu,
            "memory": memory, "gpu": gpu, "instanceFamily": "GPU instance", "operatingSystem": "Linux",
            "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used", "servicecode": "AmazonEC2"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"offerTermCode": "JRTCKXETXF", "sku": sku, "priceDimensions": {
            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "description": f"${usd} per On Demand Linux {itype} Instance Hour",
                                            "pricePerUnit": {"USD": usd}, "beginRange": "0", "endRange": "Inf"}}}}},
        "version": "20250601000000", "publicationDate": "2025-06-01T00:00:00Z"})


AWS_ITEMS = [price_item("p5.48xlarge", "us-east-1", "55.0400000000", "192", "2048 GiB", "8"),
             price_item("g5.xlarge", "us-east-1", "1.0060000000", "4", "16 GiB", "1"),
             price_item("m5.large", "us-east-1", "0.0960000000", "2", "8 GiB", "NA")]  # not a GPU family: ignored


def sku(sku_id: str, desc: str, group: str, usage: str, regions: list[str], usd: float) -> dict:
    units, nanos = int(usd), int(round((usd - int(usd)) * 1e9))
    return {"name": f"services/6F81-5844-456A/skus/{sku_id}", "skuId": sku_id, "description": desc,
            "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute",
                         "resourceGroup": group, "usageType": usage},
            "serviceRegions": regions,
            "pricingInfo": [{"effectiveTime": "2025-06-01T00:00:00Z", "pricingExpression": {
                "usageUnit": "h", "usageUnitDescription": "hour", "baseUnit": "s", "baseUnitConversionFactor": 3600,
                "displayQuantity": 1, "tieredRates": [{"startUsageAmount": 0,
                                                       "unitPrice": {"currencyCode": "USD", "units": str(units), "nanos": nanos}}]}}],
            "serviceProviderName": "Google"}


GCP_SKUS = [
    sku("A1", "Nvidia H100 80GB GPU running in Americas", "GPU", "OnDemand", ["us-central1"], 4.2007),
    sku("A2", "Spot Preemptible Nvidia H100 80GB GPU running in Americas", "GPU", "Preemptible", ["us-central1"], 2.25),
    sku("A3", "A3 Instance Core running in Americas", "CPU", "OnDemand", ["us-central1"], 0.0295),
    sku("A4", "A3 Instance Ram running in Americas", "RAM", "OnDemand", ["us-central1"], 0.0025),
    sku("A5", "Spot Preemptible A3 Instance Core running in Americas", "CPU", "Preemptible", ["us-central1"], 0.009),
    sku("A6", "Spot Preemptible A3 Instance Ram running in Americas", "RAM", "Preemptible", ["us-central1"], 0.0008),
    sku("A7", "Commitment v1: Nvidia H100 80GB GPU in Americas for 1 Year", "GPU", "Commit1Yr", ["us-central1"], 2.9),
]
GCP_MACHINES = {"items": {
    "zones/us-central1-a": {"machineTypes": [
        {"name": "a3-highgpu-8g", "guestCpus": 208, "memoryMb": 1916928, "zone": "us-central1-a",
         "accelerators": [{"guestAcceleratorType": "nvidia-h100-80gb", "guestAcceleratorCount": 8}]},
        {"name": "n2-standard-8", "guestCpus": 8, "memoryMb": 32768, "zone": "us-central1-a"}]},
    "zones/us-central1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}}}}


class FakeApis:
    """Price List (JSON protocol), Cloud Billing and Compute (REST) on 127.0.0.1; scripted failures."""

    def __init__(self) -> None:
        self.failures: list[str] = []  # consumed one per request: "429", "503", "slow", "garbage"
        self.requests: list[str] = []
        self.slow_s = 3.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass

            def _send(self, code: int, body: dict | str, ctype: str = "application/json") -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                target = self.headers.get("X-Amz-Target", "")
                api.requests.append(target or self.path)
                fail = api.failures.pop(0) if api.failures else None
                if fail == "429":
                    return self._send(429, {"__type": "ThrottlingException", "message": "Rate exceeded",
                                            "error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}})
                if fail == "503":
                    return self._send(503, {"__type": "ServiceUnavailableException", "message": "try later",
                                            "error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}})
                if fail == "slow":
                    time.sleep(api.slow_s)
                if fail == "garbage":
                    return self._send(200, "<html>proxy error</html>", "text/html")
                if target == "AWSPriceListService.GetProducts":
                    req = json.loads(body)
                    assert req["ServiceCode"] == "AmazonEC2"
                    fields = {f["Field"]: f["Value"] for f in req["Filters"]}
                    assert fields["operatingSystem"] == "Linux" and fields["capacitystatus"] == "Used"
                    items = AWS_ITEMS if fields.get("regionCode") == "us-east-1" else []
                    if fail == "nopricelist":
                        return self._send(200, {"FormatVersion": "aws_v1"})
                    if fail == "badterms":
                        return self._send(200, {"FormatVersion": "aws_v1", "PriceList": ['{"product": {}}']})
                    # two pages, as the real API pages at MaxResults
                    if req.get("NextToken") == "page2":
                        return self._send(200, {"FormatVersion": "aws_v1", "PriceList": items[1:]})
                    return self._send(200, {"FormatVersion": "aws_v1", "PriceList": items[:1], "NextToken": "page2"})
                if self.path.startswith("/v1/services/6F81-5844-456A/skus"):
                    if "pageToken=p2" in self.path:
                        return self._send(200, {"skus": GCP_SKUS[4:], "nextPageToken": ""})
                    return self._send(200, {"skus": GCP_SKUS[:4], "nextPageToken": "p2"})
                if "/aggregated/machineTypes" in self.path:
                    return self._send(200, GCP_MACHINES)
                return self._send(404, {"message": f"no route {self.path}"})

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeApis":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def apis():
    with FakeApis() as a:
        yield a


@pytest.fixture(scope="module")
def moto_ec2():
    """moto's EC2 in server mode, its spot price history seeded with realistic per-zone prices."""
    from moto.ec2.responses.spot_instances import SpotInstances
    from moto.server import ThreadedMotoServer

    seeded = {("p5.48xlarge", "us-east-1a"): "14.2460", ("p5.48xlarge", "us-east-1b"): "16.9000",
              ("g5.xlarge", "us-east-1a"): "0.3907", ("g5.xlarge", "us-east-1c"): "0.4102"}
    original = SpotInstances.describe_spot_price_history

    def seeded_history(self):
        result = original(self)  # moto's own query parsing and offering filter
        for rec in result.result["SpotPriceHistory"]:
            rec["SpotPrice"] = seeded.get((rec["InstanceType"], rec["AvailabilityZone"]), "0.00001")
        return result

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mp = pytest.MonkeyPatch()
    for k, v in AWS_ENV.items():
        mp.setenv(k, v)
    yield {"url": f"http://{host}:{port}", "seed": lambda on: setattr(
        SpotInstances, "describe_spot_price_history", seeded_history if on else original)}
    SpotInstances.describe_spot_price_history = original
    mp.undo()
    server.stop()


def _aws(apis, moto_ec2, tmp_path, **kw):
    return refresh("aws", regions=["us-east-1"], endpoint_url=apis.url, ec2_endpoint_url=moto_ec2["url"],
                   cache_directory=tmp_path, timeout=kw.pop("timeout", 5.0), **kw)


def test_aws_refresh_prices_on_demand_from_price_list_and_spot_per_zone_from_ec2(apis, moto_ec2, tmp_path):
    moto_ec2["seed"](True)
    try:
        res = _aws(apis, moto_ec2, tmp_path)
    finally:
        moto_ec2["seed"](False)
    by_type = {o.instance_type: o for o in res.offers}
    assert set(by_type) == {"p5.48xlarge", "g5.xlarge"}
    p5 = by_type["p5.48xlarge"]
    assert (p5.gpu, p5.gpu_count, p5.usd_per_hour, p5.vcpus, p5.ram_gib) == ("H100", 8, 55.04, 192.0, 2048.0)
    assert (p5.spot_usd_per_hour, p5.zone) == (14.246, "us-east-1a")  # cheapest zone
    assert by_type["g5.xlarge"].gpu == "A10G" and by_type["g5.xlarge"].spot_usd_per_hour == 0.3907
    # both Price List pages were read; the file on disk is what load_offers merges in
    assert apis.requests.count("AWSPriceListService.GetProducts") == 2
    s = load_offers(provider="aws", gpu="H100", region="us-east-1", cache_directory=tmp_path)
    live = [o for o in s.offers if o.instance_type == "p5.48xlarge"]
    assert live[0].source == res.source and s.sources["aws"]["source"] == res.source


def test_moto_placeholder_spot_price_is_rejected_as_implausible(apis, moto_ec2, tmp_path):
    res = _aws(apis, moto_ec2, tmp_path)  # unseeded moto answers SpotPrice 0.00001 for every zone
    assert all(o.spot_usd_per_hour is None for o in res.offers)
    assert any("placeholder" in d["reason"] for d in res.dropped if d["what"] == "spot")


def _seed_good(tmp_path: Path) -> bytes:
    good = tmp_path / "aws.json"
    from pricing.offer import Offer
    from pricing.snapshot import OffersFile, dumps

    o = Offer("aws", "p5.48xlarge", "us-east-1", None, "H100", 8, 80.0, 192.0, 2048.0, 50.0, None, "previous", "2026-01-01")
    good.write_text(dumps(OffersFile([o], {"aws": {"source": "previous", "as_of": "2026-01-01"}})))
    return good.read_bytes()


def test_throttling_is_retried_with_backoff_and_then_succeeds(apis, moto_ec2, tmp_path):
    apis.failures = ["429", "503"]
    t0 = time.monotonic()
    res = _aws(apis, moto_ec2, tmp_path)
    assert len(res.offers) == 2
    assert apis.requests.count("AWSPriceListService.GetProducts") == 4  # 2 failed + 2 pages
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("failure", ["garbage", "nopricelist", "badterms", "slow", "throttled"])
def test_failed_refresh_keeps_previous_catalog_and_says_what_failed(apis, moto_ec2, tmp_path, failure):
    before = _seed_good(tmp_path)
    # attempts=2 allows a retry or two; a persistent failure must exhaust them
    apis.failures = {"throttled": ["429"] * 4, "slow": ["slow"] * 4}.get(failure, [failure])
    apis.slow_s = 1.5
    with pytest.raises(RefreshError) as err:
        _aws(apis, moto_ec2, tmp_path, timeout=0.5, attempts=2)
    assert (tmp_path / "aws.json").read_bytes() == before
    assert str(err.value)  # names the failure
    if failure == "slow":
        assert "Timeout" in str(err.value) or "timed out" in str(err.value).lower()
    assert not list(tmp_path.glob(".aws.json.*"))  # no temp file left behind


def test_write_interrupted_half_way_leaves_previous_catalog_intact(apis, moto_ec2, tmp_path, monkeypatch):
    before = _seed_good(tmp_path)
    import os as _os

    real_replace = _os.replace

    def crash(src, dst):
        # the new file is fully written to its temp name; die before it replaces the old one
        assert Path(src).stat().st_size > 0
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr("pricing.cache.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _aws(apis, moto_ec2, tmp_path)
    monkeypatch.setattr("pricing.cache.os.replace", real_replace)
    assert (tmp_path / "aws.json").read_bytes() == before
    assert not list(tmp_path.glob(".aws.json.*"))


def test_concurrent_refresh_waits_for_the_lock(tmp_path):
    from pricing.cache import locked

    order = []
    with locked(tmp_path):
        t = threading.Thread(target=lambda: (locked(tmp_path).__enter__(), order.append("second")))
        t.start()
        time.sleep(0.3)
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]


def test_gcp_refresh_sums_gpu_core_and_ram_skus_per_machine_type(apis, tmp_path):
    res = refresh("gcp", endpoint_url=apis.url, project="test-project", cache_directory=tmp_path, timeout=5.0)
    assert [o.instance_type for o in res.offers] == ["a3-highgpu-8g"]
    o = res.offers[0]
    ram = 1916928 / 1024
    assert o.usd_per_hour == pytest.approx(8 * 4.2007 + 208 * 0.0295 + ram * 0.0025, abs=1e-4)
    assert o.spot_usd_per_hour == pytest.approx(8 * 2.25 + 208 * 0.009 + ram * 0.0008, abs=1e-4)
    assert (o.gpu, o.gpu_count, o.region, o.zone) == ("H100", 8, "us-central1", "us-central1-a")
    assert any("skus" in r for r in apis.requests) and any("aggregated/machineTypes" in r for r in apis.requests)


def test_gcp_throttling_retried_then_malformed_answer_keeps_old_file(apis, tmp_path):
    apis.failures = ["429"]
    assert refresh("gcp", endpoint_url=apis.url, project="p", cache_directory=tmp_path, timeout=5.0).offers
    before = (tmp_path / "gcp.json").read_bytes()
    apis.failures = ["garbage"]
    with pytest.raises(RefreshError):
        refresh("gcp", endpoint_url=apis.url, project="p", cache_directory=tmp_path, timeout=5.0)
    assert (tmp_path / "gcp.json").read_bytes() == before
