"""The ``local`` backend: a transformers causal LM in this process, batched generation.

The model comes from a Hub id, a local folder, or a ``.gguf`` file (transformers de-quantizes
GGUF weights to float32 with the ``gguf`` package). Prompts are rendered with the tokenizer's
chat template and sampled with ``num_return_sequences=n``.

The request engine calls ``complete`` from many asyncio tasks at once; those calls are
collected into batches of up to ``batch_size`` prompts (same sampling parameters and ``n``)
and each batch runs in a worker thread, so the event loop (progress, cache writes) stays live
while the model works.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindmirror.errors import UserError
from mindmirror.requests.types import FatalError, Messages, Reply, Sampling, Usage


@dataclass
class _Request:
    messages: Messages
    n: int
    sampling: Sampling
    future: asyncio.Future[Reply]


def load_causal_lm(model: str) -> tuple[Any, Any]:
    """Tokenizer and model from a Hub id, a folder, or a ``.gguf`` file (UserError if absent)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model)
    kwargs: dict[str, Any] = {}
    source: str | Path = model
    if model.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file not found: {path} (check teacher.model)")
        source, kwargs = path.parent, {"gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"cannot load the local teacher {model!r}: {first} (give a Hub id reachable from "
            "here, a model folder, or a .gguf file)"
        ) from None
    if tokenizer.chat_template is None:
        raise UserError(f"the local teacher {model!r} has no chat template; use an instruct model")
    # Decoder-only batches are padded on the left so every prompt ends where generation starts.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return tokenizer, lm


class LocalBackend:
    """Chat completions from an in-process transformers model (see the module docstring)."""

    def __init__(self, model: str, batch_size: int = 8, seed: int = 0) -> None:
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self._tokenizer, self._lm = load_causal_lm(model)
        import torch

        # Seeded once: a re-run samples the same texts, though the cache makes that moot.
        torch.manual_seed(seed)
        self._pending: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        # generate() is not re-entrant; one batch at a time even if two loops share the model.
        self._generate_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any, seed: int = 0) -> LocalBackend:
        """Build from a ``TeacherConfig`` (model, batch_size)."""
        return cls(cfg.model, cfg.batch_size, seed)

    async def complete(
        self, messages: Messages, n: int, sampling: Sampling, seed: int | None = None
    ) -> Reply:
        """``n`` sampled completions; concurrent calls share one ``generate`` per batch.

        ``seed`` is not used: requests share batched ``generate`` calls, so sampling follows
        the backend's own seed (the recipe's)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(messages, n, sampling, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # Yield once so every task that is about to call complete() joins the first batch.
        await asyncio.sleep(0)
        while self._pending:
            head = self._pending[0]
            batch = [r for r in self._pending if (r.n, r.sampling) == (head.n, head.sampling)]
            batch = batch[: self.batch_size]
            self._pending = [r for r in self._pending if r not in batch]
            try:
                replies = await asyncio.to_thread(self._generate, batch)
            except Exception as error:  # any failure inside generate() fails this batch only
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(FatalError(f"local generation: {error!r}"))
                continue
            for request, reply in zip(batch, replies, strict=True):
                if not request.future.done():
                    request.future.set_result(reply)

    def _generate(self, batch: list[_Request]) -> list[Reply]:
        import torch

        head = batch[0]
        sampling, n = head.sampling, head.n
        greedy = sampling.temperature <= 0
        encoded = self._tokenizer.apply_chat_template(
            [r.messages for r in batch],
            add_generation_prompt=True,
            padding=True,
            return_tensors="pt",
            return_dict=True,
        )
        options: dict[str, Any] = {"max_new_tokens": sampling.max_tokens}
        if greedy:
            # Greedy samples are identical: generate once and repeat instead of n times.
            options.update(do_sample=False, num_return_sequences=1)
        else:
            options.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                num_return_sequences=n,
            )
        with self._generate_lock, torch.inference_mode():
            output = self._lm.generate(
                **encoded, pad_token_id=self._tokenizer.pad_token_id, **options
            )
        width = encoded["input_ids"].shape[1]
        per_prompt = 1 if greedy else n
        replies = []
        for index in range(len(batch)):
            rows = output[index * per_prompt : (index + 1) * per_prompt, width:]
            texts = [self._tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]
            generated = sum(int(self._completion_length(row)) for row in rows)
            prompt_tokens = int(encoded["attention_mask"][index].sum())
            if greedy:
                texts, generated = texts * n, generated * n
            # Like OpenAI's usage for n choices: the prompt counts once per call.
            replies.append(Reply(texts=texts, usage=Usage(prompt_tokens, generated)))
        return replies

    def _completion_length(self, row: Any) -> int:
        """Generated tokens up to and including the first end-of-sequence (padding excluded)."""
        eos = self._tokenizer.eos_token_id
        hits = (row == eos).nonzero()
        return int(hits[0, 0]) + 1 if len(hits) else int(row.shape[0])

    async def check(self) -> None:
        """The model loaded in the constructor; nothing more to check."""

    async def aclose(self) -> None:
        """Nothing to release: the model lives as long as this object."""
