"""The `eval:`, `serve:` and `experiment:` sections of a recipe: scoring, serving, the grid."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from mindmirror.config.base import Strict, settings_differ

InferMode = Literal["answer", "cot", "vote", "mirror"]
Engine = Literal["auto", "transformers", "llama_cpp", "openai"]
GgufType = Literal["f16", "q8_0"]


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
    engine: Engine = Field(
        "auto",
        description="What generates and judges for the student (eval, experiment, predict, "
        "serve). transformers: the reference, in this process; llama_cpp: the student exported "
        "to GGUF and served by the embedded llama.cpp server (causal Llama-architecture "
        "students; several times faster on CPUs); openai: an OpenAI-compatible server already "
        "hosting the student at `engine_url` (vLLM on GPUs, llama.cpp elsewhere); auto: "
        "llama_cpp where the student is causal and exportable and llama-cpp-python[server] is "
        "installed, else transformers (seq2seq students always).",
    )
    engine_url: str | None = Field(
        None,
        description="Base URL (`http://HOST:PORT/v1`) of the server hosting the student, for "
        "engine openai.",
    )
    engine_model: str | None = Field(
        None,
        description="Model id of the student at `engine_url` (default: the first the server "
        "lists). It keys the sample cache, so name the weights.",
    )
    gguf_type: GgufType = Field(
        "f16", description="GGUF type the llama_cpp engine exports the student to (f16, q8_0)."
    )
    engine_concurrency: int = Field(
        8,
        ge=1,
        description="Requests in flight to the student's server for engine openai (vLLM "
        "batches what is in flight; each request asks a question's K samples at once). The "
        "llama_cpp engine keeps every sequence slot busy instead (engine_parallel).",
    )
    engine_parallel: int = Field(
        16,
        ge=1,
        le=256,
        description="Sequences the llama_cpp engine's batched server decodes together (each "
        "sample is one, with its own KV cache of max_input_tokens plus the longest generation "
        "asked). "
        "One decoding step serves all of them: on 2 cores a 135M student sampled 109 "
        "tokens/s with 16 against 25 one sequence at a time (docs/benchmarks.md).",
    )
    engine_servers: int = Field(
        1,
        ge=1,
        le=64,
        description="Batched server processes of the llama_cpp engine, each holding the "
        "student and engine_parallel sequences (more than one only pays on machines with "
        "cores to spare). Each prompt's samples go to one server.",
    )
    engine_threads: int | None = Field(
        None,
        ge=1,
        description="Threads of each llama_cpp engine server, to generate and to read prompts "
        "(default: the cores left by llama.cpp servers already running, divided by "
        "engine_servers, at least 1). More threads than free cores make llama.cpp's "
        "spinning threads starve each other: on a busy 2-core machine 2 threads ran 10x "
        "slower than 1; eval warns when the servers' threads outnumber the cores.",
    )
    judge: Literal["auto", "final"] = Field(
        "auto",
        description="Who judges samples in `mirror` mode. auto: the self-evaluation stage's "
        "best student when the run trained one separately (`mind_mirror`: stage-2 training can "
        "erode the verdict skill of the final student), else the final student; final: always "
        "the final student.",
    )

    @model_validator(mode="after")
    def _engine_url(self) -> EvalConfig:
        """engine openai needs a URL; a URL for another engine would be silently ignored."""
        if self.engine == "openai" and not self.engine_url:
            raise ValueError("engine openai needs engine_url (the student's server, .../v1)")
        if self.engine_url and self.engine != "openai":
            raise ValueError(f"engine_url is used by engine openai only (engine is {self.engine})")
        return self


def eval_settings_differ(made: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The ``eval:`` fields in which the settings a cell was scored with (``made``) differ from
    ``now`` (both JSON dumps), ``modes`` left out (the modes scored are compared one by one). A
    field one side does not hold (added to the config since) counts as its default: new
    options default to the behaviour before them."""
    return settings_differ(made, now, EvalConfig().model_dump(mode="json"), ("modes",))


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

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, name: str | None) -> str | None:
        # An empty name would silently serve without any key.
        if name is not None and (not name.strip() or "=" in name or "\0" in name):
            raise ValueError(
                f"{name!r} is not an environment variable name: give one, e.g. MINDMIRROR_KEY"
            )
        return name


ExperimentMethod = Literal[
    "standard", "distill", "step_by_step", "multi_cot", "mind_mirror", "mind_mirror_joint"
]
#: The Ns of one method: at least one, each at least 1.
MethodNs = Annotated[list[PositiveInt], Field(min_length=1)]
#: Methods whose N is fixed (standard uses no CoTs, step_by_step is 1 CoT): no N is set for them.
FIXED_N_METHODS = frozenset({"standard", "step_by_step"})


class ExtraRow(Strict):
    """A named row beside the grid's: one method at one N, every seed of the grid, trained with
    other recipe settings (e.g. one fix alone, so that its effect is measured by itself)."""

    name: str = Field(
        pattern=r"^[a-z0-9_]+$",
        description="Short name; the row's cells are `cells/<name>-<method>-n<N>-s<seed>/`.",
    )
    label: str = Field(min_length=1, description="The row's label in the tables.")
    method: ExperimentMethod = Field(description="The method the row trains.")
    num_cots: PositiveInt = Field(1, description="N, as the grid's rows use it.")
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Recipe settings of the row's cells as dotted keys ({train.group_by_length: "
        "true}), applied after every other setting, `train_by_method` included.",
    )


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
    num_cots: list[PositiveInt] = Field(
        default_factory=lambda: [1, 5],
        min_length=1,
        description="CoTs per training question (N) to compare; each at most teacher.num_cots.",
    )
    num_cots_by_method: dict[ExperimentMethod, MethodNs] = Field(
        default_factory=dict,
        description="Ns for particular methods instead of `num_cots`, e.g. {multi_cot: [3, 5, "
        "10]} to draw accuracy against N for the cheaper method while the self-evaluation "
        "methods run at 5 only. Not for standard or step_by_step, which have no N.",
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
    equal_examples: bool = Field(
        False,
        description="Divide train.epochs by N in the cells of the CoT methods, so that every "
        "cell sees as many (question, CoT) examples as 1 CoT does, as the published schedules "
        "do (1 CoT 300 epochs, 5 CoTs 60). mind_mirror's self-evaluation stage (a verdict "
        "row per judged CoT and evaluation) gets epochs / (teacher.num_cots x the smaller "
        "of teacher.num_evals and train.num_evals), so it too sees as many examples as 1 CoT; "
        "stage1_epochs is "
        "ignored there. mind_mirror_joint's one stage is divided by N like the others, so it "
        "sees teacher.num_cots / N times as many verdict examples as mind_mirror does.",
    )
    modes: list[InferMode] = Field(
        default_factory=lambda: ["answer", "cot", "vote", "mirror"],
        min_length=1,
        description="Inference modes scored on test, each where it applies: answer (the "
        "paper's) for all; cot and vote for methods trained on CoTs; mirror only for methods "
        "trained on self-evaluation.",
    )
    modes_by_method: dict[ExperimentMethod, list[InferMode]] = Field(
        default_factory=dict,
        description="Modes for particular methods instead of `modes`, e.g. {step_by_step: "
        "[answer]} to keep the sampled modes (vote, mirror: K CoTs per test question) for "
        "the methods whose claims need them.",
    )
    train_by_method: dict[ExperimentMethod, dict[str, Any]] = Field(
        default_factory=dict,
        description="`train:` settings for particular methods' cells, e.g. the learning rate "
        "and epochs chosen on validation for each method ({standard: {learning_rate: 1.0e-4}}).",
    )
    extra_rows: list[ExtraRow] = Field(
        default_factory=list,
        description="Named rows beside the grid's, each a method trained with other recipe "
        "settings (see ExtraRow).",
    )
    records: str | None = Field(
        None,
        description="Folder of durable records: every finished cell's compact record (metrics, "
        "per-question correctness per mode, per-sample answers and P(correct), the train "
        "summary; kilobytes, no weights) is written to `<records>/cells/<cell>.json`, and the "
        "teacher summary to `<records>/teacher_summary.json`, so that the tables and paired "
        "intervals can be rebuilt without the run directory.",
    )

    @model_validator(mode="after")
    def _ns_apply(self) -> ExperimentConfig:
        """N is fixed for standard and step_by_step; asking for others would be ignored."""
        fixed = sorted(FIXED_N_METHODS & set(self.num_cots_by_method))
        if fixed:
            raise ValueError(
                f"num_cots_by_method: {', '.join(fixed)} has no N (standard uses "
                "no CoTs, step_by_step is 1 CoT); remove it"
            )
        names = [row.name for row in self.extra_rows]
        if len(set(names)) < len(names):
            raise ValueError(f"extra_rows: names must differ, got {names}")
        return self
