"""Build the SkyPilot task for a launch with SkyPilot's Python API (`sky.Task`, `sky.Resources`, `sky.Storage`).

Constructing these objects is offline and credential-free (checked against skypilot 0.14.1: `Resources` with
`infra=` and `accelerators=` reads no catalog; `instance_type=` would, so it is left to SkyPilot's optimizer,
which picks the cheapest instance with those accelerators in the planned region, as the plan did).
`import sky` costs 3-4 s, so it happens only inside these functions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from train.spec import SpecError

# Where the output bucket is mounted on the training machine; the job's output_dir sits below it.
OUTPUT_MOUNT = "/gpuplan-outputs"

# SkyPilot object store per provider, for a bucket given by bare name (sky.data.storage.StoreType).
PROVIDER_STORES = {"aws": "S3", "gcp": "GCS", "azure": "AZURE"}

# Bucket URL schemes SkyPilot storage mounts (sky/data/storage.py).
BUCKET_SCHEMES = ("s3://", "gs://", "https://", "r2://", "cos://", "oci://", "nebius://", "cw://")

# Where a provider's SkyPilot catalog names a GPU differently from gpuplan's canonical name (which follows
# SkyPilot's common names): RunPod lists H100/H200 as H100-SXM/H200-SXM (catalogs/v8/runpod/vms.csv);
# GCP's a3-megagpu-8g carries H100-MEGA (catalogs/v8/gcp/vms.csv).
_ACCEL_NAMES = {("runpod", "H100"): "H100-SXM", ("runpod", "H200"): "H200-SXM"}

# Managed-job recovery: pinned to the planned region (price and bucket locality), so FAILOVER (retry there;
# sky/jobs/recovery_strategy.py). User-code errors are not retried; preemptions always are, including the
# trainer's own exit after a SIGTERM preemption notice (train.preemption.EXIT_PREEMPTED = 143, i.e. 128+SIGTERM).
EXIT_PREEMPTED = 143
JOB_RECOVERY = {"strategy": "FAILOVER", "max_restarts_on_errors": 0, "recover_on_exit_codes": [EXIT_PREEMPTED]}

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass
class Bucket:
    """The output bucket: an existing URL (``source``), or a name SkyPilot creates in ``store``."""

    name: str | None = None
    source: str | None = None
    store: str | None = None  # S3 | GCS | AZURE

    @property
    def label(self) -> str:
        return self.source or f"{(self.store or '').lower()}://{self.name}"


@dataclass
class TaskPlan:
    """Everything the task needs, decided before SkyPilot is imported."""

    name: str
    workdir: Path
    setup: str
    run: str
    infra: str | None  # aws/us-east-1, k8s/<ctx>, ssh/<pool>
    accelerators: str | None  # "H100:8"
    nodes: int = 1
    spot: bool = False
    disk_size: int | None = None
    bucket: Bucket | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)


def sky_accelerator(provider: str, gpu: str, per_node: int, instance_type: str | None = None) -> str:
    name = _ACCEL_NAMES.get((provider, gpu), gpu)
    if provider == "gcp" and gpu == "H100" and (instance_type or "").startswith("a3-megagpu"):
        name = "H100-MEGA"
    return f"{name}:{per_node}"


def choose_bucket(provider: str, bucket: str | None, spot: bool, default_name: str) -> Bucket | None:
    """The output bucket, or None (outputs stay on the cluster's disk).

    A spot run always needs one (a recovered job resumes from checkpoints the preempted VM wrote there); on a
    provider without a SkyPilot object store that means a bucket URL. On-demand runs get one on providers that
    have a store, so the adapter outlives autodown.
    """
    if bucket:
        if "://" in bucket:
            if not bucket.startswith(BUCKET_SCHEMES):
                raise SpecError("--bucket", f"{bucket!r} is not a bucket URL SkyPilot can mount",
                                "use s3://NAME, gs://NAME, r2://NAME or an Azure https://... container URL")
            return Bucket(source=bucket.rstrip("/"))
        if not _BUCKET_NAME.match(bucket):
            raise SpecError("--bucket", f"{bucket!r} is not a valid bucket name",
                            "use 3-63 lowercase letters, digits, dots or hyphens")
        store = PROVIDER_STORES.get(provider)
        if store is None:
            raise SpecError("--bucket", f"{provider} has no object store SkyPilot can create {bucket!r} in",
                            "give a bucket URL such as s3://NAME or gs://NAME")
        return Bucket(name=bucket, store=store)
    store = PROVIDER_STORES.get(provider)
    if store is not None:
        return Bucket(name=default_name, store=store)
    if spot:
        raise SpecError("--bucket", f"a spot run on {provider} needs a bucket for its checkpoints "
                                    f"({provider} has no object store SkyPilot can create one in)",
                        "give --bucket s3://NAME or gs://NAME, or drop --spot")
    return None


def build_task(plan: TaskPlan) -> Any:
    """The sky.Task (import sky happens here)."""
    import sky

    resources = sky.Resources(
        infra=plan.infra,
        accelerators=plan.accelerators,
        use_spot=True if plan.spot else None,
        job_recovery=dict(JOB_RECOVERY) if plan.spot else None,
        disk_size=plan.disk_size,
    )
    task = sky.Task(
        name=plan.name,
        setup=plan.setup,
        run=plan.run,
        envs=dict(plan.envs) or None,
        secrets=dict(plan.secrets) or None,
        workdir=str(plan.workdir),
        num_nodes=plan.nodes,
    )
    task.set_resources(resources)
    if plan.bucket is not None:
        b = plan.bucket
        kwargs: dict[str, Any] = {"mode": sky.StorageMode.MOUNT_CACHED, "persistent": True}
        if b.source:
            kwargs["source"] = b.source
        else:
            kwargs["name"] = b.name
            if b.store:
                kwargs["stores"] = [sky.StoreType(b.store)]
        task.set_storage_mounts({OUTPUT_MOUNT: sky.Storage(**kwargs)})
    return task


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (setup, run) as `|` blocks, as people write SkyPilot YAML."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def task_yaml(task: Any, secrets: dict[str, str] | None = None) -> str:
    """The task as SkyPilot YAML (what `sky launch` takes), with secret values redacted."""
    from sky.task import redact_task_yaml_dict

    config = task.to_yaml_config()
    redact_task_yaml_dict(config)
    if not config.get("volumes"):
        config.pop("volumes", None)
    text = yaml.dump(config, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)
    for value in (secrets or {}).values():  # belt and braces: no secret value leaves in any form
        if value:
            text = text.replace(value, "<redacted>")
    return text
