"""What the request engine prices and caps: ``price`` turns token counts into dollars (prompt
tokens a provider served from its prompt cache at their own price), and ``RunBudget`` caps the
whole bill of a run, cached samples included, in dollars or tokens (``teacher.budget``). The
run statistics it reads are ``mindmirror.requests.types.EngineStats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from mindmirror.requests.types import EngineStats, Usage


class Prices(Protocol):
    """Per-million-token prices; ``mindmirror.config.TeacherConfig`` has them."""

    price_input_per_mtok: float
    price_output_per_mtok: float


def price(usage: Usage, prices: Prices) -> float:
    """USD for ``usage``: prompt tokens served from the provider's prompt cache at
    ``price_cached_input_per_mtok`` where the settings have one, the rest at the list prices."""
    cached_rate = getattr(prices, "price_cached_input_per_mtok", None)
    cached = usage.cached_prompt_tokens if cached_rate is not None else 0
    return (
        (usage.prompt_tokens - cached) * prices.price_input_per_mtok
        + cached * (cached_rate or 0.0)
        + usage.completion_tokens * prices.price_output_per_mtok
    ) / 1e6


@dataclass(frozen=True)
class RunBudget:
    """A cap on the whole bill of a run in ``unit`` (``usd`` or ``tokens``): the samples this
    engine requested plus those it found in the cache (paid by an earlier invocation)."""

    limit: float
    unit: Literal["usd", "tokens"]

    def spent(self, stats: EngineStats) -> float:
        """The run's bill so far in this budget's unit."""
        if self.unit == "usd":
            return stats.cost_usd + stats.cached_cost_usd
        return float(
            stats.prompt_tokens
            + stats.completion_tokens
            + stats.cached_prompt_tokens
            + stats.cached_completion_tokens
        )

    def worst(self, usage: Usage, usd: float) -> float:
        """A call's worst case (``usage``, costing ``usd``) in this budget's unit."""
        return usd if self.unit == "usd" else float(usage.prompt_tokens + usage.completion_tokens)
