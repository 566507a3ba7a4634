"""Local infrastructure detection and SkyPilot's kubernetes pricing config, read back by SkyPilot itself."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from launch.local_infra import LocalInfra, detect_local_infra
from launch.sky_config import set_local_gpu_price
from train.spec import SpecError

KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "kind-skypilot", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "kind-skypilot", "context": {"cluster": "kind-skypilot", "user": "u"}},
                 {"name": "prod-eks", "context": {"cluster": "kind-skypilot", "user": "u"}}],
    "current-context": "prod-eks",
}


def write_home(home: Path, kube: bool = True, pools: dict | None = None) -> Path:
    if kube:
        (home / ".kube").mkdir(parents=True, exist_ok=True)
        (home / ".kube" / "config").write_text(yaml.safe_dump(KUBECONFIG))
    if pools is not None:
        (home / ".sky").mkdir(parents=True, exist_ok=True)
        (home / ".sky" / "ssh_node_pools.yaml").write_text(yaml.safe_dump(pools))
    return home


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


def test_nothing_set_up_means_a_direct_run(home):
    assert detect_local_infra() == LocalInfra("direct")


def test_sky_local_up_context_is_used_but_not_a_remote_current_context(home):
    write_home(home)
    found = detect_local_infra()
    assert found == LocalInfra("k8s", "kind-skypilot") and found.infra == "k8s/kind-skypilot"
    # a remote context counts only when named explicitly
    assert detect_local_infra("k8s/prod-eks").context == "prod-eks"


def test_an_ssh_node_pool_wins_and_maps_to_its_ssh_context(home):
    write_home(home, pools={"gpu-box": {"hosts": ["10.0.0.5"], "user": "me"}})
    found = detect_local_infra()
    assert (found.infra, found.context) == ("ssh/gpu-box", "ssh-gpu-box")


@pytest.mark.parametrize("choice, offered", [("ssh/nope", "gpu-box"), ("k8s/nope", "kind-skypilot"),
                                             ("cloud", "ssh/my-pool")])
def test_unknown_local_infra_names_the_flag_and_what_exists(home, choice, offered):
    write_home(home, pools={"gpu-box": {"hosts": ["10.0.0.5"]}})
    with pytest.raises(SpecError) as err:
        detect_local_infra(choice)
    assert err.value.field == "--infra" and offered in err.value.fix


def test_pricing_config_keeps_other_keys_and_skypilot_prices_the_pool(tmp_path, monkeypatch):
    """The written file passes SkyPilot's schema and SkyPilot's own Kubernetes catalog prices GPUs from it."""
    path = tmp_path / ".sky" / "config.yaml"
    path.parent.mkdir()
    path.write_text("allowed_clouds: [aws, kubernetes]\nkubernetes:\n  pricing:\n    cpu: 0.02\n")
    os.chmod(path, 0o600)
    set_local_gpu_price("ssh-gpu-box", "RTX4090", 0.61, path=path)
    set_local_gpu_price("kind-skypilot", "H100", 2.25, path=path)
    cfg = yaml.safe_load(path.read_text())
    assert cfg["allowed_clouds"] == ["aws", "kubernetes"] and cfg["kubernetes"]["pricing"] == {"cpu": 0.02}
    assert cfg["kubernetes"]["context_configs"]["ssh-gpu-box"]["pricing"]["accelerators"] == {"RTX4090": 0.61}
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left

    import sky  # noqa: F401  (once per process; building objects only, no SDK call)
    from sky import skypilot_config
    from sky.catalog import kubernetes_catalog
    from sky.provision.kubernetes.utils import KubernetesInstanceType

    monkeypatch.setenv("SKYPILOT_GLOBAL_CONFIG", str(path))
    try:
        skypilot_config.reload_config()  # validates against SkyPilot's config schema
        two_4090 = KubernetesInstanceType(8, 32, 2, "RTX4090").name
        assert kubernetes_catalog.get_hourly_cost(two_4090, False, region="ssh-gpu-box") == pytest.approx(1.22)
        one_h100 = KubernetesInstanceType(8, 32, 1, "H100").name
        assert kubernetes_catalog.get_hourly_cost(one_h100, False, region="kind-skypilot") == pytest.approx(2.25)
    finally:
        monkeypatch.delenv("SKYPILOT_GLOBAL_CONFIG")
        skypilot_config.reload_config()


def test_a_broken_sky_config_is_left_alone(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("kubernetes: [unclosed\n")
    with pytest.raises(SpecError) as err:
        set_local_gpu_price("kind-skypilot", "H100", 2.0, path=path)
    assert "not valid YAML" in err.value.one_line()
    assert path.read_text() == "kubernetes: [unclosed\n"
