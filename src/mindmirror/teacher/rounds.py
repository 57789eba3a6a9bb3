"""Drawing the teacher's samples in rounds: adaptive CoTs and evaluations, within a budget.

Every prompt is built once for its full count (``num_cots`` CoTs of a question, ``num_evals``
evaluations of a CoT) and keeps the cache keys of the fixed recipe: round ``r`` asks for sample
indices ``first .. n - 1`` of the same prompt (``Prompt.first``), so an adaptive run, a resume
or a run with a larger budget finds every sample an earlier one paid for.

- Fixed recipe (no rule): one round asks for everything, exactly as before.
- Adaptive: the first round asks for ``rule.first`` samples of each prompt; each later round
  asks ``rule.step`` more of the prompts whose votes (a CoT's answer, an evaluation's verdict)
  are not settled yet (``mindmirror.teacher.adaptive.next_count``), up to the full count.
- Budget (``teacher.budget``): questions are served in waves of ``WAVE_MIN`` or more, their
  order interleaving the splits (``interleave``) so that a budget that runs out leaves every
  split covered; the wave in which the budget ran out is left out of the records (its samples
  stay cached: a larger budget continues with them, paying nothing twice).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import replace

from mindmirror.requests.engine import RequestEngine
from mindmirror.requests.types import Prompt
from mindmirror.tasks.base import Example
from mindmirror.teacher.adaptive import StopSettings, next_count

WAVE_MIN = 8

Key = tuple[str, ...]
Vote = Callable[[Key, str | None], Hashable | None]


def interleave(examples: list[Example]) -> list[Example]:
    """``examples`` round-robin over their splits (train, validation, test, train, ...), each
    split's own order kept, so that any prefix covers every split in proportion."""
    splits: dict[str, list[Example]] = {}
    for example in examples:
        splits.setdefault(example.split, []).append(example)
    mixed: list[Example] = []
    longest = max((len(items) for items in splits.values()), default=0)
    for position in range(longest):
        for items in splits.values():
            step = len(items) / longest
            start, end = round(position * step), round((position + 1) * step)
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


def draw(
    engine: RequestEngine,
    prompts: list[Prompt],
    rule: StopSettings | None,
    vote: Vote,
    description: str,
    after_round: Callable[[], None],
) -> dict[Key, list[str | None]]:
    """The samples of each prompt (None = failed), drawn in rounds under ``rule``.

    ``vote`` reads a sample's vote (None for none); ``after_round`` runs after each round (the
    failure check). Stops early when the engine's budget runs out: the samples the budget
    skipped are left out (not None), so a later run requests them.
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
            return texts
        rounds += 1
        label = description if rounds == 1 else f"{description}, round {rounds}"
        replies = engine.run_sync(wanted, description=label)
        after_round()
        stopped = engine.last.budget_exhausted
        for prompt in wanted:
            new = replies[prompt.key][prompt.first :]
            if stopped:
                new = [text for text in new if text is not None]
            texts[prompt.key].extend(new)
            votes[prompt.key].extend(vote(prompt.key, text) for text in new)
        if stopped:
            return texts
