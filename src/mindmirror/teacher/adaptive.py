"""Stopping rules for adaptive teaching: when a question's CoTs (or a CoT's verdicts) are settled.

Adaptive CoTs draw a question's samples in rounds (``first``, then ``step`` more at a time, up
to ``teacher.num_cots``) and stop as soon as the rule says the majority answer is settled;
adaptive evaluations do the same with a CoT's verdicts up to ``teacher.num_evals``. Two rules
from the adaptive-consistency literature (Aggarwal et al. 2023, "Let's Sample Step by Step"):

- ``beta``: the Beta stopping criterion. With ``a`` votes for the leading answer and ``b`` for
  the runner-up, the probability that the leader is truly more likely than the runner-up under
  a uniform prior is ``P(p > 1/2)`` for ``p ~ Beta(a + 1, b + 1)``; stop once it reaches
  ``threshold``. For integer counts it is a binomial tail, computed exactly.
- ``margin``: stop once the leader has ``margin`` votes more than the runner-up (``margin``
  agreeing samples in a row settle a question whose samples never disagree).

Samples without a parsed answer (or verdict) carry no vote. These are pure functions: the
replay bench (``bench/adaptive_replay.py``) and ``teach`` use the same code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb
from typing import Literal, Protocol

RuleName = Literal["beta", "margin"]


class StopSettings(Protocol):
    """A stopping rule's parameters (``mindmirror.config.teacher.AdaptiveConfig`` has them)."""

    rule: RuleName
    threshold: float
    margin: int
    first: int
    step: int


def top_two(votes: Sequence[Hashable | None]) -> tuple[int, int]:
    """Votes for the leading value and for the runner-up (None votes are not counted)."""
    counts = Counter(vote for vote in votes if vote is not None).most_common(2)
    lead = counts[0][1] if counts else 0
    second = counts[1][1] if len(counts) > 1 else 0
    return lead, second


def beta_confidence(lead: int, second: int) -> float:
    """``P(p > 1/2)`` for ``p ~ Beta(lead + 1, second + 1)``: how sure the leader leads.

    With ``n = lead + second + 1`` it equals ``sum_{j <= lead} C(n, j) / 2**n`` (the
    regularized incomplete beta function at 1/2 for integer parameters).
    """
    if lead < 0 or second < 0:
        raise ValueError("vote counts are never negative")
    n = lead + second + 1
    return sum(comb(n, j) for j in range(lead + 1)) / 2**n


def settled(votes: Sequence[Hashable | None], rule: StopSettings) -> bool:
    """Whether ``votes`` (the answers or verdicts drawn so far, None = no vote) settle the
    majority under ``rule``; fewer than ``rule.first`` votes drawn never do."""
    if len(votes) < rule.first:
        return False
    lead, second = top_two(votes)
    if lead == 0:
        return False
    if rule.rule == "beta":
        return beta_confidence(lead, second) >= rule.threshold
    return lead - second >= rule.margin


def next_count(votes: Sequence[Hashable | None], rule: StopSettings | None, limit: int) -> int:
    """How many samples a question (or CoT) should have after the next round: ``limit`` for
    the fixed recipe (``rule`` None), ``first`` to begin with, ``len(votes)`` when the votes are
    settled or the limit is reached, else ``step`` more (at most ``limit``)."""
    if rule is None:
        return limit
    drawn = len(votes)
    if drawn < rule.first:
        return min(rule.first, limit)
    if drawn >= limit or settled(votes, rule):
        return drawn
    return min(drawn + rule.step, limit)


def majority(votes: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent vote (ties: the one drawn first); None when nothing was voted."""
    counts = Counter(vote for vote in votes if vote is not None)
    return counts.most_common(1)[0][0] if counts else None
