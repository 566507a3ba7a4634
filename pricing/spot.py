"""Spot preemption overhead: how much longer a job takes on spot capacity, on average.

Model (explicit, first order): preemptions arrive as a Poisson process at `preemptions_per_hour`. Each one loses
the work since the last checkpoint (uniform over the interval: interval/2 on average) plus the time to get a
new VM, reload and resume (`restart_hours`). Checkpoint writes themselves cost `checkpoint_cost_hours` per
interval. Expected wall time for W hours of useful work:
    T = W * (1 + checkpoint_cost/interval) / (1 - rate * (interval/2 + restart))
(the denominator: each wall hour loses rate*(interval/2+restart) hours). Capped when the loss reaches 90 %.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SpotAssumptions:
    # AWS Spot Instance Advisor puts most GPU types in the "<5 %" to "5-10 %" interruption-per-month buckets
    # for common types, but large GPU instances (p4d/p5) are reclaimed far more often in practice; SkyPilot's
    # managed-jobs docs and user reports suggest roughly one preemption per 10-20 h for big GPUs: 0.05/h.
    preemptions_per_hour: float = 0.05
    # The bundled trainer saves every `save_steps` (50 by default); at typical step times that is 15-30 min.
    checkpoint_interval_hours: float = 0.5
    # New spot VM + image pull + model load + resume, as SkyPilot managed jobs report it: ~10 min.
    restart_hours: float = 1 / 6
    # Writing a LoRA adapter + optimizer state takes seconds; ~1 min per checkpoint with a full save.
    checkpoint_cost_hours: float = 1 / 60

    def assumptions(self) -> list[dict[str, Any]]:
        return [
            {"name": "spot preemption rate", "value": self.preemptions_per_hour, "unit": "1/h",
             "source": "assumption: ~1 preemption per 20 h on large GPU spot VMs (AWS Spot Advisor buckets, "
                       "SkyPilot managed-jobs reports)"},
            {"name": "checkpoint interval", "value": self.checkpoint_interval_hours, "unit": "h",
             "source": "trainer save_steps=50 at typical step times"},
            {"name": "restart time after preemption", "value": round(self.restart_hours, 4), "unit": "h",
             "source": "new VM + setup + model load + resume (~10 min, SkyPilot managed jobs)"},
            {"name": "checkpoint write cost", "value": round(self.checkpoint_cost_hours, 4), "unit": "h",
             "source": "adapter + optimizer state save, ~1 min"},
        ]


MAX_LOSS_FRACTION = 0.9


def overhead_factor(a: SpotAssumptions = SpotAssumptions()) -> float:
    """Multiplier on job hours for spot capacity (1.0 = no overhead)."""
    if a.preemptions_per_hour < 0 or a.checkpoint_interval_hours <= 0 or a.restart_hours < 0:
        from pricing.errors import PricingInputError

        raise PricingInputError("spot", "rates and times must be positive", "check the spot assumptions")
    loss = a.preemptions_per_hour * (a.checkpoint_interval_hours / 2 + a.restart_hours)
    loss = min(loss, MAX_LOSS_FRACTION)
    return (1 + a.checkpoint_cost_hours / a.checkpoint_interval_hours) / (1 - loss)


def expected_preemptions(hours: float, a: SpotAssumptions = SpotAssumptions()) -> float:
    return hours * overhead_factor(a) * a.preemptions_per_hour
