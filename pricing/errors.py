"""Input errors of the price layer (same shape as `train.spec.SpecError`, which the CLI turns into one line)."""
from __future__ import annotations


class PricingInputError(ValueError):
    """A bad price-layer input: ``field`` is the offending key/flag, ``fix`` says what to do about it."""

    def __init__(self, field_name: str, problem: str, fix: str = "") -> None:
        self.field = field_name
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        tail = f"; {self.fix}" if self.fix else ""
        return f"{self.field}: {self.problem}{tail}"


class RefreshError(RuntimeError):
    """A live price refresh failed (network, throttling, malformed answer); the last good catalog is kept."""
