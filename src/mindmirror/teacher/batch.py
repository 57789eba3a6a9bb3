"""Teaching through the OpenAI Batch API: the same requests at half the price, within 24 hours.

With ``teacher.batch: true`` the request engine hands its cache misses to ``BatchRunner.fill``
before sending anything online:

1. Every missing sample becomes a line of a JSONL batch input file (``n`` samples of a prompt
   in one line with ``use_n``), with exactly the body the online path would send (model,
   messages, ``n``, sampling, the seed of its first sample), so each result is committed to
   the SQLite cache under the key the online path uses: a later online run, a re-run or a
   partly failed batch pays for nothing twice (``mindmirror.teacher.batch_input`` writes them).
2. The file is uploaded (``/files``, purpose ``batch``), the batch created (``/batches``), and
   its status polled with backoff (1 s doubling up to ``teacher.batch_poll_s``) until it is
   completed, failed, expired or cancelled; then the output and error files are read. Status
   checks that fail (connection errors, 429, 5xx) are tried again with the same backoff for
   up to ``teacher.batch_unreachable_s`` in a row; then ``teach`` stops with one line, and a
   later ``teach`` resumes polling the same batch.
3. The state lives in ``teacher/batches.json`` in the run directory and is written before each
   step that costs anything: the uploaded file's id before the batch is created, the batch id
   right after. A ``teach`` killed while a batch is in flight resumes by polling that batch
   (or adopting the batch created from its input file), never by submitting it again.
4. Each request ends with a status (``ok``, ``partial`` when the server returned fewer choices
   than ``n``, ``failed: ...``, ``expired``, ``missing``) recorded in the state file. Whatever
   the batch did not fill is left to the online engine, which requests it as usual (a later
   ``teach`` does not submit a failed request to a batch again).

Cost: batch samples are counted at ``price_batch_factor`` (default 0.5) times the online
prices, now and when later runs find them in the cache. With ``budget_usd`` a batch holds only
the requests whose worst case fits in what is left of the budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import openai

from mindmirror.errors import UserError
from mindmirror.files import write_json
from mindmirror.progress import log_console
from mindmirror.requests.types import Prompt, Reply, Usage
from mindmirror.teacher.backends.openai_http import PLACEHOLDER_KEY
from mindmirror.teacher.batch_files import (
    batch_priced_keys,
    failure_status,
    load_state,
    output_reply,
)
from mindmirror.teacher.batch_input import (
    ENDPOINT,
    InputSettings,
    Pending,
    input_chunks,
    request_lines,
)

if TYPE_CHECKING:
    from mindmirror.requests.engine import RequestEngine

log = logging.getLogger("mindmirror.teacher")

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchSettings(InputSettings, Protocol):
    """What the batch path reads (besides ``InputSettings``); ``mindmirror.config.TeacherConfig``
    has all of it."""

    api_key_env: str
    timeout_s: float
    batch_poll_s: float
    batch_unreachable_s: float


class BatchRunner:
    """Fills an engine's cache misses through the Batch API (see the module docstring)."""

    def __init__(
        self,
        cfg: BatchSettings,
        state_path: str | Path,
        *,
        enabled: bool = True,
        quiet: bool = False,
        poll_start_s: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.state_path = Path(state_path)
        self.enabled = enabled
        self.poll_start_s = poll_start_s
        self.console = log_console(quiet=quiet)
        self.state = load_state(self.state_path)
        self._priced = batch_priced_keys(self.state)
        self._filled: set[str] = set()

    # ------------------------------------------------------------------ engine hook

    def price_factor(self, key: str) -> float:
        """Price multiplier of a cached sample: the batch factor when a batch filled it."""
        return self.cfg.price_batch_factor if key in self._priced else 1.0

    async def fill(self, engine: RequestEngine, pending: Pending) -> Pending:
        """Fill what a batch can of ``pending``; return what is still missing (for online).

        Raises:
            UserError: the endpoint has no Batch API, rejects the key, or fails to take a
                batch; every result collected before is cached.
        """
        if not self.enabled or not pending:
            return pending
        client = self._client(engine)
        try:
            await self._check(client)
            wanted = {
                engine._key(prompt, index): (prompt, index)
                for prompt, missing in pending
                for index in missing
            }
            for entry in self.state["batches"]:
                if not entry.get("collected"):
                    await self._finish(client, engine, entry, wanted)
            tried = {key for entry in self.state["batches"] for key in self._entry_keys(entry)}
            fresh = self._missing(engine, pending, skip=tried)
            for entry in await self._submit(client, engine, fresh):
                await self._finish(client, engine, entry, wanted)
        except openai.OpenAIError as error:
            raise UserError(
                f"batch API at {self._base_url(engine)} failed: {self._scrub(str(error))} "
                "(finished results are cached and teacher/batches.json keeps the batch ids; "
                "re-run to resume)"
            ) from None
        finally:
            await client.close()
        still = self._missing(engine, pending, skip=set())
        if still:
            count = sum(len(missing) for _, missing in still)
            self.console.print(f"batch: {count} sample(s) left to the online requests")
        return still

    # ------------------------------------------------------------------ steps

    def _base_url(self, engine: RequestEngine) -> str:
        url = getattr(engine.backend, "base_url", None)
        if not url:
            raise UserError("teacher.batch needs the openai backend (an HTTP endpoint)")
        return str(url)

    def _key(self) -> str:
        return os.environ.get(self.cfg.api_key_env, "").strip() or PLACEHOLDER_KEY

    def _scrub(self, text: str) -> str:
        """``text`` without the key (a server may echo it in an error)."""
        key = self._key()
        return text.replace(key, "***") if key != PLACEHOLDER_KEY else text

    def _client(self, engine: RequestEngine) -> openai.AsyncOpenAI:
        key = self._key()
        return openai.AsyncOpenAI(
            base_url=self._base_url(engine), api_key=key, max_retries=3, timeout=self.cfg.timeout_s
        )

    async def _check(self, client: openai.AsyncOpenAI) -> None:
        """One cheap call: UserError when the endpoint has no Batch API or rejects the key."""
        try:
            await client.batches.list(limit=1)
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                raise UserError(
                    f"{client.base_url}: the key in ${self.cfg.api_key_env} was rejected "
                    f"({error.status_code}); set {self.cfg.api_key_env} to a valid key"
                ) from None
            raise UserError(
                f"{client.base_url} has no Batch API (/batches answered {error.status_code}): "
                "set teacher.batch=false, or use an endpoint that offers it (OpenAI)"
            ) from None
        except openai.APIConnectionError:
            raise UserError(
                f"cannot reach {client.base_url} (is the server running? check teacher.base_url)"
            ) from None

    def _missing(self, engine: RequestEngine, pending: Pending, skip: set[str]) -> Pending:
        """The samples of ``pending`` no batch filled, less those whose key is in ``skip``."""
        left: Pending = []
        for prompt, missing in pending:
            keep = []
            for index in missing:
                key = engine._key(prompt, index)
                if key not in self._filled and key not in skip:
                    keep.append(index)
            if keep:
                left.append((prompt, keep))
        return left

    async def _submit(
        self, client: openai.AsyncOpenAI, engine: RequestEngine, pending: Pending
    ) -> list[dict[str, Any]]:
        """Upload and create one batch per input chunk; return their state entries."""
        entries = []
        folder = self.state_path.parent / "batch-inputs"
        for chunk in input_chunks(request_lines(engine, pending, self.cfg)):
            folder.mkdir(parents=True, exist_ok=True)
            name = f"input-{len(self.state['batches']):04d}.jsonl"
            content = b"".join(data for _, data in chunk)
            (folder / name).write_bytes(content)
            uploaded = await client.files.create(
                file=(name, content, "application/jsonl"), purpose="batch"
            )
            entry: dict[str, Any] = {
                "input_file": str(Path("batch-inputs") / name),
                "input_file_id": uploaded.id,
                "id": None,
                "status": "uploaded",
                "submitted": time.time(),
                "collected": False,
                "model": engine.backend.model,
                "requests": {
                    line.custom_id: {
                        "keys": line.keys,
                        "indices": line.indices,
                        "prompt_version": line.prompt.prompt_version,
                        "status": "pending",
                    }
                    for line, _ in chunk
                },
            }
            self.state["batches"].append(entry)
            self._save()
            await self._create(client, entry)
            engine.last.batch_requests += len(chunk)
            entries.append(entry)
        return entries

    async def _create(self, client: openai.AsyncOpenAI, entry: dict[str, Any]) -> None:
        """Create the batch of an uploaded file and record its id at once."""
        batch = await client.batches.create(
            input_file_id=entry["input_file_id"],
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"source": "mindmirror"},
        )
        entry["id"], entry["status"] = batch.id, batch.status
        self._save()
        self.console.print(f"batch {batch.id}: submitted {len(entry['requests'])} request(s)")

    async def _adopt_or_create(self, client: openai.AsyncOpenAI, entry: dict[str, Any]) -> None:
        """A run killed between upload and recording the batch id: find the batch made from
        the uploaded file, or create it now."""
        async for batch in client.batches.list(limit=100):
            if batch.input_file_id == entry["input_file_id"]:
                entry["id"], entry["status"] = batch.id, batch.status
                self._save()
                return
        await self._create(client, entry)

    async def _poll(self, client: openai.AsyncOpenAI, entry: dict[str, Any]) -> Any:
        """Poll the batch until it ends; return the final batch object.

        Raises:
            UserError: the status checks kept failing for ``batch_unreachable_s``; the batch
                id stays in the state file for a later run.
        """
        delay = min(self.poll_start_s, self.cfg.batch_poll_s)
        # This loop is the retry policy: the client's own retries would hide the failures.
        checks = client.with_options(max_retries=0)
        failing_since: float | None = None
        while True:
            try:
                batch = await checks.batches.retrieve(entry["id"])
            except (
                openai.APIConnectionError,
                openai.InternalServerError,
                openai.RateLimitError,
            ) as error:
                # A server hiccup while a batch runs for hours is no reason to give up on it,
                # but a dead endpoint is: the batch id is saved, a later run picks it up.
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.cfg.batch_unreachable_s:
                    raise UserError(
                        f"batch {entry['id']}: status checks at {client.base_url} failed for "
                        f"{now - failing_since:.0f}s ({self._scrub(str(error))}); the batch "
                        "keeps running and teacher/batches.json keeps its id: re-run `mindmirror "
                        "teach` once the endpoint answers to resume it "
                        "(teacher.batch_unreachable_s sets how long to try)"
                    ) from None
                log.warning("batch %s: status check failed (%s); trying again", entry["id"], error)
            else:
                failing_since = None
                if batch.status != entry["status"]:
                    entry["status"] = batch.status
                    self._save()
                    counts = batch.request_counts
                    done = f" ({counts.completed}/{counts.total} done)" if counts else ""
                    self.console.print(f"batch {batch.id}: {batch.status}{done}")
                if batch.status in TERMINAL:
                    return batch
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cfg.batch_poll_s)

    async def _file_lines(self, client: openai.AsyncOpenAI, file_id: str | None) -> list[Any]:
        if not file_id:
            return []
        content = await client.files.content(file_id)
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]

    async def _finish(
        self,
        client: openai.AsyncOpenAI,
        engine: RequestEngine,
        entry: dict[str, Any],
        wanted: dict[str, tuple[Prompt, int]],
    ) -> None:
        """Wait for a batch to end, commit its results, record each request's status."""
        if entry["id"] is None:
            await self._adopt_or_create(client, entry)
        batch = await self._poll(client, entry)
        requests = entry["requests"]
        for line in await self._file_lines(client, batch.output_file_id):
            request = requests.get(line.get("custom_id"))
            response = line.get("response") or {}
            if request is None:
                continue
            if response.get("status_code") != 200:
                request["status"] = failure_status(line)
                continue
            reply = output_reply(response.get("body") or {})
            request["filled"] = self._commit(engine, entry, request, reply, wanted)
            request["status"] = "ok" if len(reply.texts) >= len(request["keys"]) else "partial"
        for line in await self._file_lines(client, batch.error_file_id):
            request = requests.get(line.get("custom_id"))
            if request is not None and request["status"] == "pending":
                request["status"] = failure_status(line)
        why = "failed: the batch failed" if batch.status == "failed" else "missing"
        for request in requests.values():
            if request["status"] == "pending":
                request["status"] = why
        if batch.status == "failed" and batch.errors and batch.errors.data:
            first = batch.errors.data[0]
            self.console.print(f"batch {batch.id} failed: {first.code}: {first.message}")
        entry["collected"] = True
        self._save()
        self._priced = batch_priced_keys(self.state)
        statuses = [r["status"].split(":")[0] for r in requests.values()]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        self.console.print(f"batch {batch.id}: {batch.status}; requests: {counts}")

    def _commit(
        self,
        engine: RequestEngine,
        entry: dict[str, Any],
        request: dict[str, Any],
        reply: Reply,
        wanted: dict[str, tuple[Prompt, int]],
    ) -> int:
        """Cache a request's texts under their sample keys; return how many it filled.

        Samples this run still wants go through the engine (results, stats, progress); the
        others (a recipe changed since the batch was sent) go straight to the cache, so
        nothing paid for is lost. A key cached meanwhile (online) is never overwritten.
        """
        texts = reply.texts[: len(request["keys"])]
        if not texts:
            return 0
        mine = list(zip(request["keys"], request["indices"], texts, strict=False))
        share = Usage(
            reply.usage.prompt_tokens // len(texts), reply.usage.completion_tokens // len(texts)
        )
        ours = [(wanted[key], text) for key, _, text in mine if key in wanted]
        if ours:
            engine.commit(
                ours[0][0][0],
                [index for (_, index), _ in ours],
                Reply(
                    [text for _, text in ours],
                    Usage(share.prompt_tokens * len(ours), share.completion_tokens * len(ours)),
                ),
                price_factor=self.cfg.price_batch_factor,
            )
        cached = engine.cache.get_many(key for key, _, _ in mine if key not in wanted)
        for key, index, text in mine:
            if key not in wanted and key not in cached:
                engine.cache.put(
                    key,
                    text,
                    share,
                    model=entry["model"],
                    prompt_version=request["prompt_version"],
                    index=index,
                )
        engine.last.samples_batch += len(ours)
        self._filled.update(key for key, _, _ in mine)
        return len(texts)

    @staticmethod
    def _entry_keys(entry: dict[str, Any]) -> list[str]:
        return [key for request in entry["requests"].values() for key in request["keys"]]

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.state_path, self.state, indent=1)


def batch_runner(cfg: Any, state_path: Path, *, quiet: bool = False) -> BatchRunner | None:
    """The engine's batch hook for a teacher config: submitting when ``cfg.batch``, pricing
    cached batch samples whenever the run has a batch state; None when neither applies."""
    if not cfg.batch and not state_path.is_file():
        return None
    return BatchRunner(cfg, state_path, enabled=bool(cfg.batch), quiet=quiet)
