"""Input errors of the price layer (same shape as `train.spec.SpecError`, which the CLI turns into one line)."""
from __future__ import annotations

_ONE_LINE = {c: " " for c in range(32)}


class PricingInputError(ValueError):
    """A bad price-layer input: ``field`` is the offending key/flag, ``fix`` says what to do about it."""

    def __init__(self, field_name: str, problem: str, fix: str = "") -> None:
        self.field = field_name
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        tail = f"; {self.fix}" if self.fix else ""
        # control characters from a hostile value (a key with a line break) never split the line
        return f"{self.field}: {self.problem}{tail}".translate(_ONE_LINE)


class RefreshError(RuntimeError):
    """A live price refresh failed (network, throttling, malformed answer); the last good catalog is kept."""
