"""Types shared by the request engine, the backends and record generation: prompts, replies,
backends and their errors, and the engine's settings, run statistics and batch hook."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mindmirror.requests.engine import RequestEngine

Messages = list[dict[str, str]]
#: What a prompt sends: chat messages, or one raw prompt string for a completions backend
#: (the student, whose prompts are task-prefixed text, not chat).
PromptText = Messages | str


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request; part of the cache key."""

    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Prompt:
    """One prompt for which ``n`` samples are wanted.

    ``key`` is the caller's handle (e.g. ``("cot", record_id)``); ``messages`` are chat messages
    or a raw prompt string (``PromptText``); ``prompt_version`` names the template so that a
    changed template never reuses old cached answers. ``instance`` (part of the cache key when
    set) gives a prompt whose messages repeat another prompt's of the same run samples of its
    own: two identical CoTs of a question are evaluated separately.
    """

    key: tuple[str, ...]
    messages: PromptText
    n: int
    sampling: Sampling
    prompt_version: str
    instance: str | None = None


@dataclass
class Usage:
    """Token counts of one backend call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Reply:
    """What a backend returned for one call: up to ``n`` texts (servers may return fewer)."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)


class Backend(Protocol):
    """Something that completes prompts: an HTTP endpoint or an in-process model."""

    model: str

    async def complete(
        self, messages: PromptText, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """Return up to ``n`` sampled completions, drawn with ``seed`` where the backend can.
        Raise ``RetryableError`` for transient failures (429, 5xx, timeouts, dropped
        connections) and ``FatalError`` otherwise."""
        ...


class RetryableError(Exception):
    """A transient failure; ``retry_after`` (seconds) comes from the server when it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(Exception):
    """A failure that retrying cannot fix (401 wrong key, 404 unknown model, bad request)."""


class EngineSettings(Protocol):
    """The engine's settings; ``mindmirror.config.TeacherConfig`` has all of them."""

    concurrency: int
    rpm: int | None
    tpm: int | None
    max_retries: int
    use_n: bool
    send_seed: bool
    price_input_per_mtok: float
    price_output_per_mtok: float
    budget_usd: float | None
    timeout_s: float


@dataclass
class EngineStats:
    """What a run did. ``paid`` figures are new requests; ``cached_*`` were served from cache."""

    samples: int = 0
    cache_hits: int = 0
    samples_new: int = 0
    samples_failed: int = 0
    samples_skipped: int = 0
    requests: int = 0
    retries: int = 0
    waited_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_cost_usd: float = 0.0
    wall_s: float = 0.0
    budget_exhausted: bool = False
    n_ignored: bool = False
    batch_requests: int = 0
    samples_batch: int = 0

    def __add__(self, other: EngineStats) -> EngineStats:
        total = EngineStats()
        for spec in fields(EngineStats):
            mine, theirs = getattr(self, spec.name), getattr(other, spec.name)
            setattr(total, spec.name, (mine or theirs) if isinstance(mine, bool) else mine + theirs)
        return total

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (for ``summary.json``)."""
        return asdict(self)


class BatchHook(Protocol):
    """Fills cache misses before the online requests (``mindmirror.teacher.batch``)."""

    def price_factor(self, key: str) -> float:
        """Price multiplier of the cached sample ``key`` (1.0 for online samples)."""
        ...

    async def fill(
        self, engine: RequestEngine, pending: list[tuple[Prompt, list[int]]]
    ) -> list[tuple[Prompt, list[int]]]:
        """Fill what it can of ``pending`` through ``engine.commit``; return the rest."""
        ...
