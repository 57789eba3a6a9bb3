"""Recipes: YAML in, validated pydantic models out, dotted ``--set`` overrides.

One recipe describes one run: the task, the teacher, the student and the evaluation. Unknown
keys are errors that name the key and the nearest valid one, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mindmirror.errors import UserError

SplitName = Literal["train", "validation", "test"]


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldMap(Strict):
    """Where a generic dataset keeps each field (column names in the JSONL/CSV/Hub rows)."""

    question: str = Field("question", description="Column with the question text.")
    answer: str = Field("answer", description="Column with the gold answer.")
    id: str | None = Field(None, description="Column with a stable row id (default: row index).")
    choices: str | None = Field(
        None, description="Column with a list of answer choices (multiple-choice tasks)."
    )
    context: str | None = Field(
        None, description="Optional column prepended to the question (e.g. a passage)."
    )


class TaskConfig(Strict):
    """The task: which benchmark or dataset, where it lives, how it is split."""

    name: Literal["svamp", "gsm8k", "cqa", "anli", "arith", "generic"] = Field(
        "svamp",
        description="Built-in task (svamp, gsm8k, cqa, anli, arith = the demo's generated "
        "word problems) or `generic` with `family` and `fields`.",
    )
    path: str | None = Field(
        None,
        description="Local file or folder with the data (formats as in ../shared/data). When "
        "unset, built-ins load from the Hugging Face Hub.",
    )
    hub_id: str | None = Field(None, description="Hub dataset id overriding the built-in one.")
    family: Literal["equation", "number", "choice", "label"] | None = Field(
        None, description="Answer family of a generic task (built-ins know their own)."
    )
    labels: list[str] | None = Field(
        None, description="Label set of a generic `label` task, e.g. [yes, no]."
    )
    fields: FieldMap = Field(default_factory=FieldMap, description="Generic-task field mapping.")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Generic task: split name -> file path (JSONL or CSV) or Hub split name.",
    )
    svamp_split: Literal["dss", "source"] = Field(
        "dss",
        description="SVAMP from the Hub: dss = the 800/200 split of Distilling Step-by-Step and "
        "Mind's Mirror (RandomState(0) over SVAMP.json's order); source = the Hub copy's own "
        "700/300 split.",
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of train questions carved out (seeded) as validation when the "
        "dataset has no validation split.",
    )
    limit: dict[str, int] = Field(
        default_factory=dict,
        description="Optional cap on questions per split, e.g. {train: 200, test: 100} "
        "(first N after the seeded split).",
    )
    num_examples: int = Field(
        300, ge=10, description="`arith` only: how many problems to generate in all."
    )
    split_seed: int | None = Field(
        None,
        description="Seed of the data itself (`arith` generation, the carved validation split); "
        "default: the recipe's `seed`. `experiment` pins it so every training seed is tested on "
        "the same questions.",
    )

    @model_validator(mode="after")
    def _generic_needs_family(self) -> TaskConfig:
        if self.name == "generic" and self.family is None:
            raise ValueError("a generic task needs `family` (equation, number, choice or label)")
        if self.family == "label" and self.name == "generic" and not self.labels:
            raise ValueError("a generic `label` task needs `labels`, e.g. [yes, no]")
        for split, count in self.limit.items():
            if split not in ("train", "validation", "test"):
                raise ValueError(f"limit: unknown split {split!r} (train, validation, test)")
            if count < 1:
                raise ValueError(
                    f"limit.{split}: {count} questions; give an integer >= 1, or drop the key "
                    "to use the whole split"
                )
        return self


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
        return self


InferMode = Literal["answer", "cot", "vote", "mirror"]


class EvalConfig(Strict):
    """Evaluation and inference: the modes scored on the test split and how they sample."""

    modes: list[InferMode] = Field(
        default_factory=lambda: ["answer", "cot", "vote", "mirror"],
        description="answer: `predict:` greedy; cot: `explain:` greedy, answer parsed; vote: K "
        "sampled CoTs, majority; mirror: K sampled CoTs weighted by the student's own P(correct).",
    )
    num_samples: int = Field(
        5, ge=1, le=64, description="K: sampled CoTs per question (vote, mirror)."
    )
    temperature: float = Field(
        0.7, gt=0.0, le=2.0, description="Sampling temperature (vote, mirror)."
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling (vote, mirror).")
    max_new_tokens: int = Field(256, ge=1, description="Max generated tokens per CoT.")
    answer_max_tokens: int = Field(32, ge=1, description="Max generated tokens in `answer` mode.")
    max_input_tokens: int = Field(
        512, ge=8, description="Inputs are truncated to this many tokens."
    )
    batch_size: int = Field(8, ge=1, description="Sequences per generate call / forward pass.")
    abstain_threshold: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="mirror: abstain when the winning answer's confidence is below this (it also "
        "abstains when the student judges every sample wrong).",
    )
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the 95% interval.")
    limit: int | None = Field(None, ge=1, description="Score only the first N test questions.")
    checkpoint: str | None = Field(
        None, description="Student to score (default: the run's final trained student)."
    )
    judge: Literal["auto", "final"] = Field(
        "auto",
        description="Who judges samples in `mirror` mode. auto: the self-evaluation stage's "
        "best student when the run trained one separately (`mind_mirror`: stage-2 training can "
        "erode the verdict skill of the final student), else the final student; final: always "
        "the final student.",
    )


class ServeConfig(Strict):
    """The OpenAI-compatible HTTP API over a trained student (`mindmirror serve`)."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless you mean otherwise.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port).")
    mode: InferMode = Field(
        "cot",
        description="Default inference mode of `serve` and `predict` for students trained "
        "with CoTs; students trained without (standard, distill) default to answer. A "
        "request may ask for another.",
    )
    model_name: str = Field("mindmirror-student", description="Model id listed at /v1/models.")
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body accepted.")
    max_tokens_limit: int = Field(1024, ge=1, description="Largest `max_tokens` a request may ask.")
    max_n: int = Field(16, ge=1, le=64, description="Largest `n` (samples, K) a request may ask.")
    api_key_env: str | None = Field(
        None,
        description="Name of an environment variable holding a key: every request must then "
        "send `Authorization: Bearer <key>` (401 otherwise). The key is never logged.",
    )


#: Trackers Trainer reports to (``report_to`` of transformers' ``TrainingArguments``).
Tracker = Literal[
    "none",
    "all",
    "tensorboard",
    "wandb",
    "mlflow",
    "trackio",
    "comet_ml",
    "clearml",
    "dvclive",
    "swanlab",
    "azure_ml",
    "codecarbon",
]


class TrainConfig(Strict):
    """Training the student: the method, the model, the loss and the optimisation."""

    method: Literal[
        "standard", "distill", "step_by_step", "multi_cot", "mind_mirror", "mind_mirror_joint"
    ] = Field(
        "mind_mirror",
        description="standard: gold answers; distill: the teacher's majority answer; "
        "step_by_step: answer + 1 CoT; multi_cot: answer + N CoTs; mind_mirror: stage 1 "
        "self-evaluation, then stage 2 as multi_cot; mind_mirror_joint: both in one stage.",
    )
    student: str = Field(
        "embedded",
        description="Student model: Hub id, local folder, .gguf file, or `embedded` (the "
        "packaged SmolLM2-135M-Instruct). Seq2seq or causal is detected from its config.",
    )
    labels: Literal["teacher", "gold"] = Field(
        "teacher",
        description="Target of `predict:` rows: each CoT's teacher answer (the paper) or gold.",
    )
    num_cots: int = Field(5, ge=1, le=64, description="N: parsed CoTs used per question.")
    num_evals: int = Field(5, ge=1, le=64, description="M: evaluations used per CoT (stage 1).")
    alpha: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of short targets (answer, verdict); long targets get 1 - alpha.",
    )
    dedupe: bool = Field(
        False,
        description="Merge identical rows into one counted as many times (same total loss per "
        "epoch, fewer steps; not the same optimisation). Off in the published code.",
    )
    loss_norm: Literal["task_token_mean", "row_mean"] = Field(
        "task_token_mean",
        description="task_token_mean (published): each task's loss is a token mean over its "
        "rows in the batch, then alpha * L_short + (1 - alpha) * L_long; row_mean: each row's "
        "token mean x its weight, averaged over rows (every row weighs the same).",
    )
    explain_target: Literal["rationale", "cot"] = Field(
        "rationale",
        description="`explain:` target. rationale (published): the CoT before its answer "
        "sentence; cot: the whole CoT with its answer, which the cot/vote/mirror inference "
        "modes need (they read the answer from the student's own CoT).",
    )
    distill_label: Literal["first", "majority"] = Field(
        "first",
        description="`distill` label: the first parsed CoT's answer (published) or the majority "
        "answer over the CoTs (labelled distill-majority in tables).",
    )
    batch_unit: Literal["examples", "rows"] = Field(
        "examples",
        description="What batch_size counts. examples (published): (question, CoT) examples, "
        "each of which is a short and a long row in two-task methods, so a micro-batch holds "
        "2 x batch_size rows there; rows: training rows.",
    )
    epochs: float = Field(3.0, gt=0, description="Epochs of each stage.")
    stage1_epochs: float | None = Field(
        None, gt=0, description="Epochs of the self-evaluation stage (default: `epochs`)."
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop each stage after this many optimizer steps (overrides epochs).",
    )
    batch_size: int = Field(8, ge=1, description="Rows per device per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup: float = Field(
        0.0, ge=0, description="Warmup: a fraction of steps in [0, 1) or a number of steps."
    )
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate schedule after warmup."
    )
    max_input_tokens: int = Field(512, ge=8, description="Inputs truncated to this many tokens.")
    max_target_tokens: int = Field(256, ge=4, description="Targets truncated to this many.")
    precision: Literal["auto", "fp32", "bf16", "bf16_force"] = Field(
        "auto",
        description="auto: bf16 autocast (fp32 master weights) where the hardware runs bf16 "
        "natively (a GPU from Ampere on, a CPU with AVX512-BF16 or AMX), else fp32; bf16: the "
        "same but warns when it falls back to fp32 (emulated bf16 is many times slower); "
        "bf16_force: bf16 even where it is emulated; fp32. fp16 is never used (T5 overflows).",
    )
    lora: bool = Field(False, description="Train LoRA adapters instead of all weights (peft).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: list[str] | None = Field(
        None, description="Module names to adapt (default: all linear layers)."
    )
    group_by_length: bool = Field(
        True, description="Batch rows of similar length together (less padding)."
    )
    eval_steps: int | None = Field(
        None, ge=1, description="Validate (and checkpoint) every N steps; default: every epoch."
    )
    val_limit: int | None = Field(
        200, ge=1, description="Validation questions used to choose the checkpoint (None: all)."
    )
    eval_batch_size: int = Field(16, ge=1, description="Sequences per validation generate call.")
    eval_max_new_tokens: int = Field(
        32, ge=4, description="Max tokens generated for a validation answer or verdict."
    )
    save_total_limit: int = Field(
        2, ge=1, description="Checkpoints kept per stage (the best one is always kept)."
    )
    logging_steps: int = Field(10, ge=1, description="Log the training loss every N steps.")
    report_to: Tracker | list[Tracker] = Field(
        "none",
        description="Experiment trackers the Trainer logs to, as `report_to` of transformers: "
        "none, all (every one installed), tensorboard (events under "
        "student/<stage>/checkpoints/runs/), wandb, mlflow, trackio, ... or a list of them. "
        "Each needs its package installed (e.g. pip install tensorboard).",
    )


ExperimentMethod = Literal[
    "standard", "distill", "step_by_step", "multi_cot", "mind_mirror", "mind_mirror_joint"
]


class ExperimentConfig(Strict):
    """`mindmirror experiment`: the paper's comparison grid, methods x num_cots x seeds.

    Each cell trains and evaluates in ``cells/<method>-n<N>-s<seed>/`` on the run's one set of
    teacher records. N applies where the method uses it: ``standard`` ignores CoTs and
    ``step_by_step`` is the 1-CoT method, so both run once per seed; ``distill`` takes the
    teacher's majority answer over the largest N; ``multi_cot`` runs every N above 1 (its N = 1
    is ``step_by_step``); ``mind_mirror`` and ``mind_mirror_joint`` run every N.
    """

    methods: list[ExperimentMethod] = Field(
        default_factory=lambda: ["standard", "distill", "step_by_step", "multi_cot", "mind_mirror"],
        min_length=1,
        description="Methods compared (the paper's rows: standard fine-tuning, standard "
        "distillation, 1 CoT, N CoTs, 1 and N CoTs with self-evaluation).",
    )
    num_cots: list[int] = Field(
        default_factory=lambda: [1, 5],
        min_length=1,
        description="CoTs per training question (N) to compare; each at most teacher.num_cots.",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="Training seeds of every cell; the table gives mean +- std over them.",
    )
    seeds_by_method: dict[ExperimentMethod, list[int]] = Field(
        default_factory=dict,
        description="Seeds for particular methods instead of `seeds`, e.g. {mind_mirror: [0]} "
        "to run the costly two-stage method once while the others run three times.",
    )
    modes: list[InferMode] = Field(
        default_factory=lambda: ["answer", "cot", "vote", "mirror"],
        min_length=1,
        description="Inference modes scored on test, each where it applies: answer (the "
        "paper's) for all; cot and vote for methods trained on CoTs; mirror only for methods "
        "trained on self-evaluation.",
    )


class Recipe(Strict):
    """A whole run: task, teacher, student and evaluation settings."""

    name: str = Field("run", description="Run name; the run directory is runs/<name> by default.")
    run_dir: str | None = Field(None, description="Run directory (default: runs/<name>).")
    seed: int = Field(0, description="Seed for splits, sampling and training.")
    task: TaskConfig = Field(default_factory=TaskConfig, description="The task.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The teacher.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training the student.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation and inference.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The HTTP API.")
    experiment: ExperimentConfig = Field(
        default_factory=ExperimentConfig, description="The comparison grid (`experiment`)."
    )

    def resolved_run_dir(self) -> Path:
        """The run directory this recipe writes to."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name


# ---------------------------------------------------------------------------- loading


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(info.alias or name)
    return keys


def _submodel(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            ann = info.annotation
            for cand in (ann, *getattr(ann, "__args__", ())):
                if isinstance(cand, type) and issubclass(cand, BaseModel):
                    return cand
    return None


def _explain(error: ValidationError, source: str) -> str:
    """Turn pydantic's first error into one line naming the key and the nearest valid key."""
    err = error.errors()[0]
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        model: type[BaseModel] | None = Recipe
        for part in loc[:-1]:
            model = _submodel(model, part) if model else None
        valid = _known_keys(model) if model else []
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(valid)})"
        return f"{source}: unknown key '{dotted}'{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {dotted}: {msg}"


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {dotted}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """Parse ``key.sub=value`` strings; values are YAML scalars (``0.9``, ``true``, ``[a, b]``)."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected key=value, e.g. teacher.temperature=0.9")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value))
    return parsed


def recipe_from_dict(
    data: dict[str, Any], overrides: list[str] | None = None, source: str = "recipe"
) -> Recipe:
    """Validate a recipe mapping after applying dotted overrides; raise UserError on problems."""
    data = dict(data)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value)
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise UserError(_explain(error, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply ``--set`` overrides, validate it.

    Raises:
        UserError: missing file, bad YAML, unknown key (with the nearest valid one), bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise UserError(f"{path}:{where} is not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections (task:, teacher:, ...)")
    return recipe_from_dict(data, overrides, source=str(path))


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (written to runs/<name>/recipe.yaml)."""
    return yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True), sort_keys=False)
