"""Local cost of ownership and the spot overhead model, pinned against hand calculation."""
from __future__ import annotations

import pytest

from pricing.errors import PricingInputError
from pricing.local import (break_even_utilisation, detect_local_gpus, job_cost, load_profile, presets,
                           profile_from_dict, summary, usd_per_gpu_hour, utilisation_from_workload)
from pricing.spot import SpotAssumptions, overhead_factor

BASE = dict(name="box", gpu="RTX 4090", gpu_count=2, purchase_price_usd=4000, other_capex_usd=2000,
            lifetime_years=3, residual_value_pct=20, gpu_power_w=400, host_power_w=200, pue=1.5,
            electricity_usd_per_kwh=0.2, maintenance_pct_per_year=5, cost_of_capital_pct=0, utilisation=0.5)


def test_effective_gpu_hour_matches_hand_calculation_without_capital_cost():
    p = profile_from_dict(BASE)
    # capex 6000, residual 1200 -> 1600/yr; maintenance 300/yr; 2 GPUs x 8760 h x 0.5 = 8760 GPU-h
    fixed = (1600 + 300) / 8760
    energy = (400 + 200 / 2) / 1000 * 1.5 * 0.2  # 0.15 $/GPU-h
    assert usd_per_gpu_hour(p) == pytest.approx(fixed + energy)
    assert usd_per_gpu_hour(p, 1.0) == pytest.approx(fixed / 2 + energy)
    # break-even against 1.00 $/GPU-h cloud: 1900 / (8760 * 2 * (1 - 0.15))
    assert break_even_utilisation(p, 1.0) == pytest.approx(1900 / (8760 * 2 * 0.85))
    assert break_even_utilisation(p, 0.10) is None  # cloud cheaper than our electricity


def test_capital_cost_uses_capital_recovery_factor_net_of_residual():
    p = profile_from_dict({**BASE, "cost_of_capital_pct": 10})
    r, n, c = 0.10, 3, 6000.0
    annual = (c - 1200 / (1 + r) ** n) * r / (1 - (1 + r) ** -n)  # 2049.85...
    assert annual == pytest.approx(2050.0, abs=1)
    assert usd_per_gpu_hour(p) == pytest.approx((annual + 300) / 8760 + 0.15)


def test_job_cost_marginal_is_electricity_only_when_owned():
    owned = profile_from_dict({**BASE, "already_owned": True})
    jc = job_cost(owned, hours=10, gpus=2)
    energy = (2 * 400 + 200) / 1000 * 1.5 * 0.2 * 10  # 3.00 USD
    assert jc.marginal_cost_usd == pytest.approx(energy)
    assert jc.loaded_cost_usd == pytest.approx(1900 / 8760 * 2 * 10 + energy)
    bought = job_cost(profile_from_dict(BASE), hours=10, gpus=2)
    assert bought.marginal_cost_usd == pytest.approx(bought.loaded_cost_usd)
    assert {a["name"] for a in jc.assumptions} >= {"box: pue", "box: electricity_usd_per_kwh"}


def test_utilisation_from_workload():
    assert utilisation_from_workload(4, 20, 72) == pytest.approx(152 / 730)
    p = profile_from_dict({**{k: v for k, v in BASE.items() if k != "utilisation"},
                           "workload": {"runs_per_month": 10, "job_hours": 73}})
    assert p.utilisation == 1.0


def test_bundled_presets_have_sources_and_sane_figures():
    ps = presets()
    assert {"rtx4090-workstation", "l40s-server", "h100-hgx"} <= set(ps)
    assert (ps["h100-hgx"].gpu, ps["h100-hgx"].gpu_count, ps["l40s-server"].gpu_count) == ("H100", 8, 4)
    for p in ps.values():
        assert set(p.sources) >= {"purchase_price_usd", "gpu_power_w", "electricity_usd_per_kwh"}
        assert 0.1 < usd_per_gpu_hour(p) < 5
    s = summary(ps["h100-hgx"], cloud_usd_per_gpu_hour=3.99, job_hours=10)
    assert s["curve"][0]["usd_per_gpu_hour"] > s["curve"][-1]["usd_per_gpu_hour"]
    assert 0 < s["break_even_utilisation"] < 1 and s["loaded_cost_usd"] > 0


@pytest.mark.parametrize("change,field", [({"pue": 0.5}, "local_profile.pue"), ({"gpu": "GTX 9999"}, "local_profile.gpu"),
                                          ({"gpu_count": "four"}, "local_profile.gpu_count"),
                                          ({"purchase_prise_usd": 1}, "local_profile.purchase_prise_usd")])
def test_bad_profiles_name_the_field(change, field):
    with pytest.raises(PricingInputError) as err:
        profile_from_dict({**BASE, **change})
    assert err.value.field == field


def test_profile_file_can_extend_a_preset(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: rtx4090-workstation\nname: my-box\nalready_owned: true\nelectricity_usd_per_kwh: 0.30\n")
    p = load_profile(str(f))
    assert (p.name, p.gpu, p.already_owned, p.electricity_usd_per_kwh) == ("my-box", "RTX4090", True, 0.30)
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PricingInputError):
        load_profile(str(tmp_path / "bad.yaml"))
    with pytest.raises(PricingInputError):
        load_profile("no-such-preset")


def test_spot_overhead_factor_hand_calculation():
    a = SpotAssumptions(preemptions_per_hour=0.1, checkpoint_interval_hours=1.0, restart_hours=0.25,
                        checkpoint_cost_hours=0.0)
    assert overhead_factor(a) == pytest.approx(1 / (1 - 0.1 * (0.5 + 0.25)))
    assert overhead_factor(SpotAssumptions(preemptions_per_hour=0.0, checkpoint_cost_hours=0.0)) == 1.0
    assert overhead_factor(SpotAssumptions()) == pytest.approx((1 + (1 / 60) / 0.5) / (1 - 0.05 * (0.25 + 1 / 6)))


def test_no_nvidia_gpu_detected_here():
    assert detect_local_gpus() == []
