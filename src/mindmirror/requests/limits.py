"""Rate limits, backoff and request seeds: the engine's helpers that need no engine.

A per-minute token bucket, the retry delay (exponential backoff with jitter, honouring a
server's ``Retry-After``), the sampling seed taken from a sample's cache key, the token estimate
of a call before it is sent, and the even split of a reply's token counts over its samples.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mindmirror.requests.types import Prompt

# A server asking for a longer pause than this is treated as asking for this long; the retry
# budget then decides whether to keep trying.
MAX_RETRY_AFTER_S = 300.0


class TokenBucket:
    """A per-minute rate limit as a token bucket holding up to one second of rate.

    ``reserve`` takes the tokens at once (the level may go below zero) and returns how long the
    caller must wait before acting, so callers are served in call order and a single request
    larger than the bucket still goes through, just later.
    """

    def __init__(
        self, per_minute: float, burst_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self._clock = clock
        self._level = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self, amount: float) -> float:
        """Take ``amount`` tokens; return the seconds to wait before using them."""
        self._refill()
        self._level -= amount
        return 0.0 if self._level >= 0 else -self._level / self.rate

    def adjust(self, amount: float) -> None:
        """Give back (positive) or take more (negative) tokens once the real count is known."""
        self._refill()
        self._level = min(self.capacity, self._level + amount)


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    A server's ``Retry-After`` is honoured (plus a little jitter so waiting tasks do not return
    all at once); otherwise exponential backoff with "equal jitter": half the step fixed, half
    random.
    """
    rng = rng or random.Random()
    if retry_after is not None:
        wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
        return wait + rng.uniform(0.0, 0.1 * max(wait, base_s))
    step = min(cap_s, base_s * 2.0**attempt)
    return step / 2.0 + rng.uniform(0.0, step / 2.0)


def request_seed(key: str) -> int:
    """A sampling seed from a sample's cache key (31 bits: every server accepts it)."""
    return int(key[:8], 16) & 0x7FFFFFFF


def estimate_tokens(prompt: Prompt, n: int) -> int:
    """Tokens a call may use before the server says: prompt characters / 4 plus the maximum."""
    body = prompt.messages
    if isinstance(body, str):
        return len(body) // 4 + prompt.sampling.max_tokens * n
    chars = sum(len(message.get("content", "")) for message in body)
    return chars // 4 + 4 * len(body) + prompt.sampling.max_tokens * n


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal integers (the first ones take the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
