"""Shell commands of a launch: setup (install the train extra) and run (`python -m train`, or torchrun).

Several GPUs or nodes start through torchrun with SkyPilot's node environment: SKYPILOT_NUM_NODES,
SKYPILOT_NODE_RANK, SKYPILOT_NODE_IPS (one IP per line, the head node first) and SKYPILOT_NUM_GPUS_PER_NODE
(SkyPilot docs, "Distributed Multi-Node Jobs"). The command line itself comes from `train.distributed`
(torch-free), so the trainer and the launcher agree on it.
"""
from __future__ import annotations

import math
import shlex
from typing import Any, Mapping, Sequence

from launch.bundle import SPEC_NAME

# torch.distributed's customary rendezvous port (torchrun's default --master-port).
MASTER_PORT = 29500

# Environment variables passed to the job as SkyPilot secrets when set here (redacted in YAML and logs).
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")


def setup_command(requirements: Sequence[str]) -> str:
    reqs = " ".join(shlex.quote(r) for r in requirements)
    return "set -e\npython -m pip install --quiet --upgrade pip\n" f"python -m pip install --quiet {reqs}"


def run_command(nodes: int, gpus_per_node: int, config: str = SPEC_NAME, grace_s: float | None = None) -> str:
    """The command each node runs from the bundle folder (SkyPilot's workdir).

    Several processes start through torchrun with a shutdown grace: `grace_s` seconds between SIGTERM and the
    kill (default train.preemption.DEFAULT_GRACE_S; train.preemption.NOTICE_S has the figure per provider)."""
    if nodes * gpus_per_node <= 1:
        grace = f"GPUPLAN_STOP_GRACE_S={grace_s:g} " if grace_s else ""
        return f"{grace}python -m train --config {shlex.quote(config)}"
    try:
        from train.distributed import torchrun_shell_command
    except ImportError:  # a trainer without the helper: the same command, built here
        return (
            'MASTER_ADDR=$(echo "$SKYPILOT_NODE_IPS" | head -n1)\n'
            "python -m torch.distributed.run --nnodes=$SKYPILOT_NUM_NODES --node-rank=$SKYPILOT_NODE_RANK "
            "--nproc-per-node=$SKYPILOT_NUM_GPUS_PER_NODE "
            f"--master-addr=$MASTER_ADDR --master-port={MASTER_PORT} "
            f"-m train --config {shlex.quote(config)}"
        )
    return torchrun_shell_command(config, master_port=MASTER_PORT, grace_s=grace_s)


def local_command(python: str, gpus: int, config: str) -> list[str]:
    """argv for a direct run on this machine: one process, or torchrun --standalone over its GPUs."""
    if gpus <= 1:
        return [python, "-m", "train", "--config", config]
    try:
        from train.distributed import torchrun_command
    except ImportError:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
                "-m", "train", "--config", config]
    return torchrun_command(config, env={"SKYPILOT_NUM_GPUS_PER_NODE": str(gpus)}, python=python)


def disk_size_gib(model: Mapping[str, Any] | None, method: str, merge_adapter: bool) -> int:
    """OS disk for the training VM, from the model size.

    50 GiB for the OS image, CUDA, the torch wheels and the pip cache (SkyPilot GPU images are ~30 GB);
    the hub download in bf16 (2 bytes/parameter); a merged copy when merge_adapter; two full checkpoints for
    full fine-tuning (bf16 weights 2 + fp32 master 4 + Adam moments 8 = 14 bytes/parameter each). Rounded up
    to 50 GiB and never below SkyPilot's default of 256 GiB.
    """
    params = float((model or {}).get("params_total") or 0)
    gib = 50 + params * 2 / 2**30
    if merge_adapter:
        gib += params * 2 / 2**30
    if method == "full":
        gib += 2 * params * 14 / 2**30
    return max(256, int(math.ceil(gib / 50.0) * 50))


def secrets_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in SECRET_ENV if environ.get(k)}
