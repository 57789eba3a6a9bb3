"""Drawing the teacher's samples in rounds: adaptive CoTs and evaluations, within a budget.

Every prompt is built once for its full count (``num_cots`` CoTs of a question, ``num_evals``
evaluations of a CoT) and keeps the cache keys of the fixed recipe: round ``r`` asks for sample
indices ``first .. n - 1`` of the same prompt (``Prompt.first``), so an adaptive run, a resume
or a run with a larger budget finds every sample an earlier one paid for.

- Fixed recipe (no rule): one round asks for everything, exactly as before.
- Adaptive: the first round asks for ``rule.first`` samples of each prompt; each later round
  asks ``rule.step`` more of the prompts whose votes (a CoT's answer, an evaluation's verdict)
  are not settled yet (``mindmirror.teacher.adaptive.next_count``), up to the full count.
- Budget (``teacher.budget``): questions are served in waves of ``wave_size`` (``WAVE_MIN`` or
  more), their order interleaving the splits (``interleave``): every split starts in the first
  wave, so a budget that runs out after it leaves every split covered; the wave in which the
  budget ran out is left out of the records (its samples stay cached: a larger budget
  continues with them, paying nothing twice).
- Failures: the samples given up on are counted over every round of one ``draw``
  (``Failures``), so a late round of a few samples is judged with the rounds before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace

from rich.console import Console
from rich.markup import escape

from mindmirror.errors import UserError
from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Prompt
from mindmirror.tasks.base import Example
from mindmirror.teacher.adaptive import StopSettings, next_count

WAVE_MIN = 8

Key = tuple[str, ...]
Vote = Callable[[Key, str | None], Hashable | None]


def wave_size(concurrency: int) -> int:
    """Questions per wave of a budget run: ``WAVE_MIN``, or two per concurrent call if more."""
    return max(WAVE_MIN, 2 * concurrency)


def interleave(examples: list[Example]) -> list[Example]:
    """``examples`` round-robin over their splits (train, validation, test, train, ...), each
    split's own order kept and its first question at the very start, so that any prefix covers
    every split in proportion (a small split at most one question ahead)."""
    splits: dict[str, list[Example]] = {}
    for example in examples:
        splits.setdefault(example.split, []).append(example)
    mixed: list[Example] = []
    longest = max((len(items) for items in splits.values()), default=0)
    for position in range(longest):
        for items in splits.values():
            step = len(items) / longest
            start, end = math.ceil(position * step), math.ceil((position + 1) * step)
            mixed.extend(items[start:end])
    return mixed


def waves(examples: list[Example], size: int | None) -> Iterator[list[Example]]:
    """The questions in waves of ``size`` (all at once when ``size`` is None), splits
    interleaved within and across waves."""
    ordered = interleave(examples)
    if size is None:
        yield ordered
        return
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


@dataclass
class Failures:
    """The samples of one kind of request (``kind``: the CoTs, or the self-evaluations) that
    the engine gave up on after every retry, summed over every round of one ``draw``."""

    kind: str
    max_share: float
    failed: int = 0
    total: int = 0
    last_error: str | None = None

    def add(self, engine: RequestEngine) -> None:
        """Count the engine's latest run (one round)."""
        self.failed += engine.last.samples_failed
        self.total += engine.last.samples
        self.last_error = engine.last_error or self.last_error

    def _what(self) -> str:
        return (
            f"{self.failed} of {self.total} teacher samples failed after every retry for the "
            f"{self.kind} (last error: {self.last_error or 'not recorded'})"
        )

    def check(self) -> None:
        """A UserError (before any record is written, so ``teach && train`` stops) when all of
        them or more than ``max_share`` failed. Each kind is judged alone: evaluations that all
        failed leave stage 1 nothing to train on, however many CoTs came back."""
        if self.failed and (self.failed == self.total or self.failed / self.total > self.max_share):
            raise UserError(
                f"{self._what()}; no records written: fix the endpoint (teacher.base_url, "
                "teacher.model, its log) and re-run `mindmirror teach`, which requests only the "
                f"missing samples (teacher.max_failed_share={self.max_share} sets the tolerance)"
            )

    def warn(self) -> None:
        """One warning line when any failed (fewer than ``check`` refuses)."""
        if self.failed:
            Console(stderr=True).print(
                f"[yellow]warning[/]: {escape(self._what())}; re-run `mindmirror teach` to "
                "request only those again",
                highlight=False,
                soft_wrap=True,
            )


def draw(
    engine: RequestEngine,
    prompts: list[Prompt],
    rule: StopSettings | None,
    vote: Vote,
    description: str,
    failures: Failures,
) -> dict[Key, list[str | None]]:
    """The samples of each prompt (None = failed), drawn in rounds under ``rule``.

    ``vote`` reads a sample's vote (None for none). After each round ``failures`` counts the
    round and checks the sum of every round so far (a UserError when too many failed); it warns
    once at the end. Stops early when the engine's budget runs out: the samples the budget
    skipped stay None in their places (nothing is cached for them: a later run requests them).
    """
    texts: dict[Key, list[str | None]] = {prompt.key: [] for prompt in prompts}
    votes: dict[Key, list[Hashable | None]] = {prompt.key: [] for prompt in prompts}
    rounds = 0
    while True:
        wanted = []
        for prompt in prompts:
            drawn = len(texts[prompt.key])
            target = next_count(votes[prompt.key], rule, prompt.n)
            if target > drawn:
                wanted.append(replace(prompt, n=target, first=drawn))
        if not wanted:
            break
        rounds += 1
        label = description if rounds == 1 else f"{description}, round {rounds}"
        replies = engine.run_sync(wanted, description=label)
        failures.add(engine)
        failures.check()
        for prompt in wanted:
            new = replies[prompt.key][prompt.first :]
            texts[prompt.key].extend(new)
            votes[prompt.key].extend(vote(prompt.key, text) for text in new)
        if engine.last.budget_exhausted:
            break
    failures.warn()
    return texts
