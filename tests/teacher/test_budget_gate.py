"""The request engine's budget gate: caps in force, reservations, and a cap that stays reached."""

from __future__ import annotations

import asyncio

from mindmirror.requests.accounting import RunBudget
from mindmirror.requests.budget_gate import BudgetGate, spending_caps
from mindmirror.requests.types import EngineStats, Usage


def test_caps_list_each_budget_in_force_in_its_unit() -> None:
    totals = EngineStats(cost_usd=1.0, cached_cost_usd=0.5, prompt_tokens=10)
    worst = Usage(3, 7)
    assert spending_caps(None, None, totals, worst, 0.2) == []
    assert spending_caps(2.0, None, totals, worst, 0.2) == [(2.0, 1.0, 0.2)]
    usd = RunBudget(limit=5.0, unit="usd")
    assert spending_caps(None, usd, totals, worst, 0.2) == [(5.0, 1.5, 0.2)]
    tokens = RunBudget(limit=100.0, unit="tokens")
    assert spending_caps(2.0, tokens, totals, worst, 0.2) == [(2.0, 1.0, 0.2), (100.0, 10.0, 10.0)]


def test_a_call_waits_for_reservations_to_settle_and_a_reached_cap_stays_reached() -> None:
    async def scenario() -> tuple[list[float] | None, ...]:
        gate = BudgetGate()
        gate.open()
        spent = [0.0]

        def caps() -> list[tuple[float, float, float]]:
            return [(1.0, spent[0], 0.6)]

        first = await gate.admit(caps)
        # 0.6 held + 0.6 wanted > 1.0: the second call waits until the first settles.
        second = asyncio.create_task(gate.admit(caps))
        await asyncio.sleep(0)
        assert not second.done()
        spent[0] = 0.1  # the first call cost far less than its worst case
        await gate.release(first or [])
        admitted = await second
        spent[0] = 0.5
        await gate.release(admitted or [])
        refused = await gate.admit(caps)  # 0.5 + 0.6 > 1.0
        spent[0] = 0.0
        after = await gate.admit(caps)  # exhausted for good, even with room again
        return first, admitted, refused, after, (gate.exhausted,)

    first, admitted, refused, after, exhausted = asyncio.run(scenario())
    assert first == [0.6] and admitted == [0.6]
    assert refused is None and after is None and exhausted == (True,)
