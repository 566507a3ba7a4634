"""Ranks and process groups, and the torchrun command line for one or many nodes.

Importing this module does not import torch: launch/ uses `torchrun_command` / `torchrun_shell_command`
to build the run command of a SkyPilot task.

Environment read (torchrun sets the first group; SkyPilot sets the second on every node of a task):
  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
  SKYPILOT_NODE_RANK, SKYPILOT_NODE_IPS (newline-separated, head node first), SKYPILOT_NUM_GPUS_PER_NODE
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Mapping, Sequence

DEFAULT_MASTER_PORT = 29500  # torchrun's default rendezvous port
# torchrun's agent forwards SIGTERM to the workers and kills them TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds later
# (30 by default; the variable is read by torch >= 2.9 and ignored before). The launcher gives the workers the
# preemption grace plus this margin, so the cloud's kill, not torchrun's, ends a save; the trainer is told the
# grace (GPUPLAN_STOP_GRACE_S) so it skips a save it cannot finish (train.preemption).
SHUTDOWN_MARGIN_S = 5


def grace_env(grace_s: float | None = None) -> dict[str, str]:
    """Environment for torchrun and the trainer: how long workers have between SIGTERM and the kill."""
    from train.preemption import DEFAULT_GRACE_S, GRACE_ENV

    grace = float(grace_s if grace_s is not None else DEFAULT_GRACE_S)
    return {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(int(grace + SHUTDOWN_MARGIN_S)), GRACE_ENV: f"{grace:g}"}


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda:<local_rank>"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def read_env(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    env = os.environ if env is None else env
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def init_distributed() -> DistEnv:
    """Pick the device and, under torchrun (WORLD_SIZE > 1), join the process group: nccl on GPUs, gloo on CPU."""
    import torch

    rank, world, local = read_env()
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world,
                                             device_id=torch.device(device) if backend == "nccl" else None)
    return DistEnv(rank, world, local, device)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch

        torch.distributed.barrier()


def all_reduce_sum(env: DistEnv, values: list[float]) -> list[float]:
    """Sum a few numbers over ranks (float64 on the rank's device)."""
    if not env.distributed:
        return list(values)
    import torch

    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def shutdown(env: DistEnv) -> None:
    if env.distributed:
        import torch

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def torchrun_command(config_path: str, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                     python: str = "python", master_port: int | None = None,
                     grace_s: float | None = None) -> list[str]:
    """The command that runs `python -m train` on this node, as an argv list.

    Reads SkyPilot's variables from `env` (default os.environ): nodes = len(SKYPILOT_NODE_IPS), this node's
    rank = SKYPILOT_NODE_RANK, processes per node = SKYPILOT_NUM_GPUS_PER_NODE (1 when unset, e.g. on a CPU),
    master = the first IP. With one node and one process it is a plain `python -m train ...`; several
    processes start through `env` with the shutdown grace (grace_env) so a preempted save is not cut off.
    """
    env = os.environ if env is None else env
    ips = [ip for ip in env.get("SKYPILOT_NODE_IPS", "").split() if ip]
    nodes = max(1, len(ips))
    node_rank = int(env.get("SKYPILOT_NODE_RANK", 0) or 0)
    per_node = int(env.get("SKYPILOT_NUM_GPUS_PER_NODE", 1) or 1)
    port = master_port or int(env.get("MASTER_PORT", DEFAULT_MASTER_PORT))
    train_args = ["-m", "train", "--config", config_path, *extra_args]
    if nodes == 1 and per_node == 1:
        return [python, *train_args]
    grace = [f"{k}={v}" for k, v in grace_env(grace_s).items()]
    cmd = ["env", *grace, python, "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc-per-node={per_node}"]
    if nodes > 1:
        cmd += [f"--node-rank={node_rank}", f"--master-addr={ips[0]}", f"--master-port={port}"]
    else:
        cmd += ["--standalone"]
    return cmd + train_args


def torchrun_shell_command(config_path: str, extra_args: Sequence[str] = (), python: str = "python",
                           master_port: int = DEFAULT_MASTER_PORT, grace_s: float | None = None) -> str:
    """The same as a shell line for a SkyPilot `run:` section: the SkyPilot variables are expanded on each node."""
    tail = " ".join(shlex.quote(a) for a in ["-m", "train", "--config", config_path, *extra_args])
    grace = " ".join(f"{k}={v}" for k, v in grace_env(grace_s).items())
    return (
        f'{grace} {python} -m torch.distributed.run '
        f'--nnodes="$(echo "$SKYPILOT_NODE_IPS" | wc -l)" '
        f'--nproc-per-node="${{SKYPILOT_NUM_GPUS_PER_NODE:-1}}" '
        f'--node-rank="${{SKYPILOT_NODE_RANK:-0}}" '
        f'--master-addr="$(echo "$SKYPILOT_NODE_IPS" | head -n1)" '
        f'--master-port={master_port} {tail}'
    )
