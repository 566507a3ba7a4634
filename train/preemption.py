"""SIGTERM handling: spot VMs and Kubernetes send SIGTERM before they kill a job.

The handler only sets a flag (and notes when). The training loop reads it between micro batches and after
each optimizer step (on every rank at once, through an all-reduce), saves a checkpoint and exits with
EXIT_PREEMPTED. 143 is 128 + SIGTERM(15), the status a shell reports for a job killed by SIGTERM, so
schedulers that restart killed jobs treat this exit the same way, while `subprocess` callers can still
tell it from a hard kill (returncode -15).

The time between SIGTERM and the kill is short: 30 s on GCP Spot VMs and Azure Spot VMs (GCP "Spot VMs"
docs, preemption process; Azure Scheduled Events, Preempt notice, both read 2026-11) and 2 min on AWS Spot
(EC2 "Spot Instance interruption notices"); torchrun's agent kills workers 30 s after it forwards SIGTERM
unless TORCH_ELASTIC_SHUTDOWN_TIMEOUT says otherwise. The trainer assumes GPUPLAN_STOP_GRACE_S seconds
(default 30, the shortest of those notices; the launcher sets it with torchrun's timeout) and skips a save
it cannot finish in that time (estimated from this run's own saves), so the last complete checkpoint stays.
"""
from __future__ import annotations

import math
import os
import signal
import time

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a SpecError: bad job spec, data or model
EXIT_PREEMPTED = 143  # SIGTERM received; a checkpoint was saved; run the same command again to resume

GRACE_ENV = "GPUPLAN_STOP_GRACE_S"
DEFAULT_GRACE_S = 30.0  # GCP / Azure spot notice (the shortest common one)
# Seconds between a spot VM's preemption notice and its end, by provider (same sources as above); the
# launcher passes the provider's figure to torchrun_shell_command(grace_s=...) when it knows the provider.
NOTICE_S = {"aws": 120.0, "gcp": 30.0, "azure": 30.0}
# A save is started only if SAVE_MARGIN x its measured duration fits in what is left of the grace (writes
# slow down when every rank of a preempted node flushes at once).
SAVE_MARGIN = 1.5


def stop_grace_s(env: dict | None = None) -> float:
    raw = (os.environ if env is None else env).get(GRACE_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_GRACE_S
    return value if math.isfinite(value) and value > 0 else DEFAULT_GRACE_S


class PreemptionWatch:
    def __init__(self) -> None:
        self.requested = False
        self.requested_at: float | None = None  # time.monotonic() of the first SIGTERM
        self._previous = None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if not self.requested:
            self.requested_at = time.monotonic()
        self.requested = True

    def install(self) -> "PreemptionWatch":
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
