"""One regression check and its printed line: what was compared, the baseline, now, the rule, the verdict."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    cell: str
    metric: str
    baseline: float
    now: float
    rule: str  # how far ``now`` may move from ``baseline``, in words
    ok: bool

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        return (f"{verdict} {self.cell:<26} {self.metric:<12} baseline {self.baseline:<10.4g} "
                f"now {self.now:<10.4g} ({self.rule})")


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]
