"""Find the user's own GPU infrastructure that SkyPilot can launch on, without calling SkyPilot.

Read from the files SkyPilot itself reads, so nothing starts an API server:
- SSH node pools: ~/.sky/ssh_node_pools.yaml (`sky ssh up` turns each pool into kube context `ssh-<pool>`);
  SkyPilot infra `ssh/<pool>`.
- Kubernetes: the kubeconfig ($KUBECONFIG, first path, else ~/.kube/config). `sky local up` creates the
  context `kind-skypilot`; SkyPilot infra `k8s/<context>`. Only that context, or one the user names with
  `--infra k8s/<context>`, counts as local: a kubeconfig's current context may be a shared remote cluster.
Otherwise the job runs directly on this machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.spec import SpecError

SKY_LOCAL_UP_CONTEXT = "kind-skypilot"  # context name `sky local up` creates (SkyPilot docs, "Local Kubernetes")


@dataclass(frozen=True)
class LocalInfra:
    kind: str  # "ssh" | "k8s" | "direct"
    name: str = ""  # pool or context name

    @property
    def infra(self) -> str | None:
        """SkyPilot `infra:` value (None for a direct run)."""
        return f"{self.kind}/{self.name}" if self.kind in ("ssh", "k8s") else None

    @property
    def context(self) -> str | None:
        """Kubernetes context SkyPilot uses for it (SSH pools are served as `ssh-<pool>`)."""
        if self.kind == "ssh":
            return f"ssh-{self.name}"
        return self.name if self.kind == "k8s" else None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return None


def ssh_node_pools(home: Path | None = None) -> list[str]:
    home = home or Path(os.path.expanduser("~"))
    data = _read_yaml(home / ".sky" / "ssh_node_pools.yaml")
    return [str(k) for k in data] if isinstance(data, dict) else []


def kube_contexts(home: Path | None = None) -> list[str]:
    env = os.environ.get("KUBECONFIG")
    if env:
        path = Path(os.path.expanduser(env.split(os.pathsep)[0]))
    else:
        path = (home or Path(os.path.expanduser("~"))) / ".kube" / "config"
    data = _read_yaml(path)
    if not isinstance(data, dict):
        return []
    return [str(c.get("name")) for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]


def detect_local_infra(choice: str | None = None, home: Path | None = None) -> LocalInfra:
    """The local infrastructure to launch on: ``choice`` (direct | k8s/<ctx> | ssh/<pool>) or what is set up."""
    pools = ssh_node_pools(home)
    contexts = kube_contexts(home)
    if choice:
        kind, _, name = choice.partition("/")
        kind = {"kubernetes": "k8s"}.get(kind, kind)
        if kind == "direct" and not name:
            return LocalInfra("direct")
        if kind == "ssh" and name:
            if name not in pools:
                raise SpecError("--infra", f"no SSH node pool {name!r} in ~/.sky/ssh_node_pools.yaml",
                                f"use one of: {', '.join(pools)}" if pools else "define it there and run `sky ssh up`")
            return LocalInfra("ssh", name)
        if kind == "k8s" and name:
            if name not in contexts:
                raise SpecError("--infra", f"no Kubernetes context {name!r} in the kubeconfig",
                                f"use one of: {', '.join(contexts)}" if contexts else "run `sky local up` first")
            return LocalInfra("k8s", name)
        raise SpecError("--infra", f"{choice!r} is not direct, k8s/<context> or ssh/<pool>",
                        "e.g. --infra ssh/my-pool, --infra k8s/kind-skypilot or --infra direct")
    if pools:
        return LocalInfra("ssh", sorted(pools)[0])
    if SKY_LOCAL_UP_CONTEXT in contexts:
        return LocalInfra("k8s", SKY_LOCAL_UP_CONTEXT)
    return LocalInfra("direct")
