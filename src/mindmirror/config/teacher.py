"""The `teacher:` section of a recipe: the teacher backend, its sampling and its limits."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from mindmirror.config.base import SplitName, Strict


class ImportConfig(Strict):
    """Existing teacher outputs read by the `import` backend."""

    format: Literal["jsonl", "dss", "mcc_kd", "tot"] = Field(
        "jsonl",
        description="jsonl: {id and/or question (or premise + hypothesis, optional choices), "
        "cots: [str], evaluations: [[str]]} per line; dss: Distilling Step-by-Step PaLM "
        "files; mcc_kd: MCC-KD multi-CoT files; tot: Mind's Mirror Tree-of-Thoughts files "
        "(docs/records.md).",
    )
    path: str = Field(..., description="File or folder holding the teacher outputs.")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Optional split -> file overrides inside `path` (e.g. {train: train.json}).",
    )
    evaluate_with: Literal["openai", "local"] | None = Field(
        None,
        description="With `evaluator: teacher`, self-evaluate imported CoTs that the files "
        "give no evaluations for through this live backend (teacher.model, base_url, "
        "api_key_env apply to it); None = use only the files' evaluations.",
    )
    min_match: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="`teach` fails (one line showing an expected id and question) unless at "
        "least this share of the file's entries match a task question, or of the task's "
        "questions (in teacher.splits) get imported CoTs, whichever share is larger; 0 "
        "accepts any file.",
    )
    drop_unmatched: bool = Field(
        False,
        description="Leave the task questions the file gives no CoTs out of the records, so "
        "every method (standard fine-tuning included) trains and validates on the same "
        "questions: those the teacher covered.",
    )


class AdaptiveConfig(Strict):
    """A stopping rule for adaptive teaching (``mindmirror.teacher.adaptive``): samples are
    drawn in rounds, ``first`` then ``step`` more at a time, until the rule says the majority
    is settled or the limit (``num_cots`` or ``num_evals``) is reached."""

    rule: Literal["beta", "margin"] = Field(
        "margin",
        description="beta: stop once P(leader truly leads) under a Beta posterior on the two "
        "leading answers reaches `threshold` (Adaptive-Consistency); margin: stop once the "
        "leader has `margin` votes more than the runner-up.",
    )
    threshold: float = Field(
        0.95, gt=0.5, lt=1.0, description="beta rule: the posterior probability that stops."
    )
    margin: int = Field(
        2,
        ge=1,
        le=64,
        description="margin rule: the lead that stops (2: two agreeing samples settle it).",
    )
    first: int = Field(2, ge=1, le=64, description="Samples drawn in the first round.")
    step: int = Field(
        1,
        ge=1,
        le=64,
        description="Samples added per later round (a large step keeps the rounds, each of "
        "which sends the prompt again, few).",
    )


class BudgetConfig(Strict):
    """A budget for a whole run: what its records' samples may cost, paid now or on an earlier
    `teach` of the same run (cached samples count, so a re-run with the same budget requests
    nothing and a larger budget continues where the last one stopped)."""

    usd: float | None = Field(
        None, gt=0, description="Dollars at the configured prices (price_*_per_mtok)."
    )
    tokens: int | None = Field(None, gt=0, description="Prompt plus completion tokens.")

    @model_validator(mode="after")
    def _one_unit(self) -> BudgetConfig:
        if (self.usd is None) == (self.tokens is None):
            raise ValueError("give exactly one of budget.usd or budget.tokens")
        return self


class TeacherConfig(Strict):
    """The teacher: where CoTs and self-evaluations come from, and how they are requested."""

    backend: Literal["openai", "local", "import", "embedded"] = Field(
        "openai",
        description="openai: any OpenAI-compatible HTTP endpoint; local: transformers "
        "in-process; import: existing teacher outputs; embedded: the packaged SmolLM2 GGUF "
        "served by llama.cpp on loopback (the demo's offline default).",
    )
    model: str = Field(
        "gpt-4o-mini",
        description="Model name sent to the endpoint; for `local`, a Hub id, path or .gguf file.",
    )
    base_url: str | None = Field(
        None, description="Endpoint, e.g. http://localhost:8000/v1 (default: OpenAI's)."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the key (the key itself is "
        "never read from or written to a file).",
    )
    num_cots: int = Field(5, ge=1, le=64, description="CoTs sampled per question (N).")
    num_evals: int = Field(5, ge=0, le=64, description="Self-evaluations per CoT (M); 0 = none.")
    evaluator: Literal["teacher", "gold"] = Field(
        "teacher",
        description="teacher: the paper's self-evaluation by the teacher; gold: NOT the paper's "
        "method, the verdict is whether the CoT's answer matches gold (no critique, no calls).",
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="CoT sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="CoT nucleus sampling.")
    max_tokens: int = Field(256, ge=1, description="Max generated tokens per CoT.")
    eval_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Evaluation temperature.")
    eval_max_tokens: int = Field(160, ge=1, description="Max generated tokens per evaluation.")
    few_shot: int = Field(
        4,
        ge=0,
        le=16,
        description="Few-shot examples (from train, with gold) in the CoT prompt; with eval_v2, "
        "those with worked solutions also give the worked evaluations of the evaluation prompt.",
    )
    cot_prompt: str = Field(
        "cot_v2",
        description="CoT prompt template (teacher/prompts/*.txt); cot_v2's shots show worked "
        "solutions where the dataset has them, cot_v1's only the answer sentence.",
    )
    eval_prompt: str = Field(
        "eval_v2",
        description="Self-evaluation prompt template; eval_v2 shows worked evaluations built "
        "from the shots' worked solutions, eval_v1 is zero-shot.",
    )
    splits: list[SplitName] = Field(
        default_factory=lambda: ["train", "validation"],
        description="Splits to teach. Add `test` only to measure later how well the student's "
        "self-evaluation matches the teacher's on unseen questions; test is never trained on.",
    )
    concurrency: int = Field(32, ge=1, le=1024, description="Requests in flight at once.")
    rpm: int | None = Field(None, ge=1, description="Requests-per-minute limit (None = none).")
    tpm: int | None = Field(None, ge=1, description="Tokens-per-minute limit (None = none).")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(
        6, ge=0, description="Retries on 429/5xx/timeouts/connection errors (with backoff)."
    )
    use_n: bool = Field(
        True,
        description="Ask for all samples of a prompt in one request with `n`; missing choices "
        "are requested separately (llama.cpp's server ignores `n`).",
    )
    send_seed: bool = Field(
        True,
        description="Send each request a seed derived from its cache key, so servers that honour "
        "`seed` (vLLM, llama.cpp, OpenAI best-effort) give the same samples on a fresh run; "
        "false for a server that rejects the parameter.",
    )
    price_input_per_mtok: float = Field(0.0, ge=0, description="USD per 1M prompt tokens.")
    price_output_per_mtok: float = Field(0.0, ge=0, description="USD per 1M completion tokens.")
    budget_usd: float | None = Field(
        None,
        ge=0,
        description="Stop requesting once the run's cost reaches this (cache hits are free).",
    )
    budget: BudgetConfig | None = Field(
        None,
        description="Budget of the whole run in dollars ({usd: 2.5}) or tokens ({tokens: "
        "300000}), cached samples included. Questions are served in waves of at least 8 "
        "(2 x concurrency if more) whose order interleaves the splits, so every split is "
        "covered from the first wave on; `teach` stops cleanly when the next request could "
        "pass the budget (the records hold the finished waves) and resumes, paying nothing "
        "twice, with a larger one. None = no budget.",
    )
    adaptive_cots: AdaptiveConfig | None = Field(
        None,
        description="Ours, not the paper's: draw a question's CoTs in rounds and stop when its "
        "majority answer is settled (up to num_cots); None = num_cots for every question, as "
        "published.",
    )
    adaptive_evals: AdaptiveConfig | None = Field(
        None,
        description="Ours, not the paper's: evaluate a CoT again only while its verdicts "
        "disagree (up to num_evals); None = num_evals for every CoT, as published.",
    )
    share_duplicate_evals: bool = Field(
        False,
        description="Ours, not the paper's (whose code evaluates duplicates separately): "
        "identical CoTs of a question share one set of evaluations.",
    )
    price_cached_input_per_mtok: float | None = Field(
        None,
        ge=0,
        description="USD per 1M prompt tokens the provider served from its prompt cache (as "
        "reported in usage.prompt_tokens_details.cached_tokens); None = price_input_per_mtok.",
    )
    max_failed_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="`teach` fails (exit code 2, no records written; finished samples stay "
        "cached) when more than this share of its samples failed after every retry, and "
        "always when all of them did; below it, it warns in one line.",
    )
    batch: bool = Field(
        False,
        description="`openai` backend: send the cache misses through the OpenAI Batch API "
        "(half price, results within 24 hours) instead of one request each; what a batch "
        "does not fill falls back to online requests. For large paid runs that can wait; "
        "not for servers without /v1/batches (vLLM, llama.cpp, Ollama).",
    )
    price_batch_factor: float = Field(
        0.5, ge=0, le=1, description="Batch price as a share of the online prices."
    )
    batch_poll_s: float = Field(
        60.0, gt=0, description="Longest wait between two status checks of a running batch."
    )
    batch_unreachable_s: float = Field(
        900.0,
        gt=0,
        description="`teach` stops (exit code 2) once the status checks of a running batch "
        "have failed without a break for this many seconds (they back off up to "
        "batch_poll_s); the batch keeps running and teacher/batches.json keeps its id, so a "
        "later `teach` resumes it.",
    )
    batch_size: int = Field(8, ge=1, description="`local` backend: prompts per generate call.")
    import_: ImportConfig | None = Field(
        None, alias="import", description="`import` backend: where the outputs are."
    )

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @model_validator(mode="after")
    def _import_needs_source(self) -> TeacherConfig:
        if self.backend == "import" and self.import_ is None:
            raise ValueError("backend `import` needs an `import:` section with `format` and `path`")
        live = self.import_.evaluate_with if self.import_ is not None else None
        if self.batch and "openai" not in (self.backend, live):
            raise ValueError(
                "batch: true needs backend `openai` (or import.evaluate_with: openai); "
                "set teacher.batch=false"
            )
        if self.budget is not None and self.batch:
            raise ValueError(
                "teacher.budget does not cap Batch API requests: set teacher.batch=false, or "
                "use teacher.budget_usd (which batches respect)"
            )
        if self.adaptive_cots is not None and self.adaptive_cots.first > self.num_cots:
            raise ValueError(
                f"adaptive_cots.first={self.adaptive_cots.first} is more than "
                f"num_cots={self.num_cots}: lower it or raise num_cots"
            )
        if self.adaptive_evals is not None and self.adaptive_evals.first > self.num_evals:
            raise ValueError(
                f"adaptive_evals.first={self.adaptive_evals.first} is more than "
                f"num_evals={self.num_evals}: lower it or raise num_evals"
            )
        return self
