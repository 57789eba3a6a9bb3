"""Admission of the request engine's calls under its spending caps: each call reserves its
worst case under every cap in force before it is sent, and releases it once it has settled.

A cap is ``(limit, spent, worst case)``: ``budget_usd`` over what the engine paid, a
``RunBudget`` (``teacher.budget``) over the run's whole bill, cached samples included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mindmirror.requests.accounting import RunBudget
from mindmirror.requests.types import EngineStats, Usage

Cap = tuple[float, float, float]


def spending_caps(
    budget_usd: float | None,
    budget: RunBudget | None,
    totals: EngineStats,
    worst: Usage,
    usd: float,
) -> list[Cap]:
    """(limit, spent, worst case) of each budget in force for a call whose worst case is
    ``worst`` (``usd`` dollars), given the engine's ``totals`` over all its runs."""
    caps = []
    if budget_usd is not None:
        caps.append((budget_usd, totals.cost_usd, usd))
    if budget is not None:
        caps.append((budget.limit, budget.spent(totals), budget.worst(worst, usd)))
    return caps


class BudgetGate:
    """Reserves calls' worst cases under the caps; once a cap is reached it stays reached."""

    def __init__(self) -> None:
        #: True once a call was refused: every later call of the engine is refused too.
        self.exhausted = False
        # Made inside the running loop by ``open``.
        self._lock: asyncio.Condition
        self._reserved = [0.0, 0.0]

    def open(self) -> None:
        """Start a run (inside its event loop): no reservation held."""
        self._lock = asyncio.Condition()
        self._reserved = [0.0, 0.0]

    async def admit(self, caps: Callable[[], list[Cap]]) -> list[float] | None:
        """Reserve a call's worst case under every cap of ``caps()``; None once a cap is
        reached (the reservations to ``release`` otherwise).

        While in-flight calls hold reservations that block this one, wait for them to settle:
        their real cost is usually far below their worst case.
        """
        async with self._lock:
            while True:
                now = caps()
                if self.exhausted or any(spent + w > cap for cap, spent, w in now):
                    self.exhausted = True
                    self._lock.notify_all()
                    return None
                if all(
                    spent + held + w <= cap
                    for (cap, spent, w), held in zip(now, self._reserved, strict=False)
                ):
                    self._reserved = [
                        held + w for (_, _, w), held in zip(now, self._reserved, strict=False)
                    ]
                    return [w for _, _, w in now]
                await self._lock.wait()

    async def release(self, held: list[float]) -> None:
        """Give back what ``admit`` reserved for a call that has settled."""
        if not held:
            return
        async with self._lock:
            self._reserved = [mine - w for mine, w in zip(self._reserved, held, strict=False)]
            self._lock.notify_all()
