"""The four inference modes shared by eval, predict and serve.

- ``answer``: ``predict:`` question -> answer, greedy (the paper's mode).
- ``cot``: ``explain:`` question -> CoT, greedy, the answer parsed from the CoT.
- ``vote``: K sampled CoTs, majority over their canonical answers (self-consistency).
- ``mirror``: the same K CoTs, each judged by the student itself (``verdict:`` question + CoT);
  votes are weighted by the student's P(correct). It abstains when it judges every sample
  wrong or when the winning answer's confidence is under ``abstain_threshold``.

Confidence, in [0, 1]: ``answer``/``cot``: the geometric-mean token probability of the greedy
output (``answer``: recalibrated on validation, with abstention under a threshold, when the run
fitted it: ``train.answer_confidence``); ``vote``: the winning answer's share of the K votes;
``mirror``: the winning answer's summed P(correct) over K (so agreement and self-judged
correctness both raise it), or, when the run fitted one (``train.own_judge``), the combined
confidence of ``mindmirror.student.confidence``, under whose validation-chosen threshold
``mirror`` abstains.
``vote`` and ``mirror`` share their K samples when both are asked for at once. The judge is
``Student.judge`` when set (a two-stage run's stage-1 self-evaluation student), else the student
itself; with a separate judge, ``mirror_final`` scores the same samples judged by the student
itself, so both judges are reported.

Every mode samples and judges through ``Student.generator``: transformers in this process, or
a llama.cpp (or other OpenAI-compatible) server hosting the student
(``mindmirror.student.engines.generation_engine``, chosen by ``eval.engine``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mindmirror.config import EvalConfig, InferMode
from mindmirror.student.answer_confidence import AnswerCalibration, calibrated_answers
from mindmirror.student.confidence import ConfidenceModel, calibrated
from mindmirror.student.formats import EXPLAIN, PREDICT, VERDICT, evaluation_input, reasoning_input
from mindmirror.student.generate import Generator, Sample, TransformersGenerator
from mindmirror.tasks.base import Task

MODES: tuple[InferMode, ...] = ("answer", "cot", "vote", "mirror")
#: ``mirror`` judged by the final student itself, scored beside ``mirror`` when that one is
#: judged by a separate self-evaluation student (a two-stage run's stage-1 best).
OWN_JUDGE_MODE = "mirror_final"
Choices = tuple[str, ...] | None


@dataclass
class Student:
    """A loaded student: model, tokenizer and kind (``seq2seq`` or ``causal``).

    ``judge`` is the student that answers ``verdict:`` inputs when it is not this one (the
    self-evaluation stage's best student of a two-stage run); None means this one judges.
    ``server`` generates and judges for it when set (a llama.cpp or other OpenAI-compatible
    server hosting it: ``mindmirror.student.engines``); None means transformers.
    ``confidence`` is the run's combined confidence (``mindmirror.student.confidence``, fitted
    beside an own-CoT judge): when set, ``mirror`` returns it and abstains under its threshold.
    ``answer_confidence`` is ``answer`` mode's calibration (``train.answer_confidence``): when
    set, ``answer`` returns the calibrated confidence and abstains under its threshold.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kind: str
    judge: Student | None = None
    server: Generator | None = None
    confidence: ConfidenceModel | None = None
    answer_confidence: AnswerCalibration | None = None

    @property
    def generator(self) -> Generator:
        """What samples and judges for this student: its server, else transformers."""
        return self.server or TransformersGenerator(self.model, self.tokenizer)

    @property
    def judge_or_self(self) -> Student:
        """The student that judges CoTs."""
        return self.judge or self


@dataclass
class Judged:
    """One sampled CoT with its parsed answer and, in ``mirror`` mode, the student's verdict
    (``logprob``: its mean token log-probability, when sampling asked for it)."""

    text: str
    answer: str | None
    canonical: str | None
    probs: dict[str, float] | None = None
    logprob: float | None = None

    @property
    def p_correct(self) -> float:
        """The student's P(correct) for this CoT (0 when it was not judged)."""
        return self.probs["correct"] if self.probs else 0.0

    @property
    def verdict(self) -> str | None:
        """The most likely verdict, or None when the CoT was not judged."""
        return max(self.probs, key=self.probs.__getitem__) if self.probs else None


@dataclass
class Prediction:
    """One question answered in one mode."""

    mode: str
    question: str
    answer: str | None
    canonical: str | None
    confidence: float
    cot: str | None = None
    verdict: str | None = None
    abstained: bool = False
    samples: list[Judged] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (samples with their answers and verdict probabilities)."""
        data = asdict(self)
        data["samples"] = [
            {"text": s.text, "answer": s.answer, "verdict": s.verdict, "probs": s.probs}
            for s in self.samples
        ]
        return data


def majority(canonicals: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent parsed answer and its share of all votes (ties: first seen wins)."""
    return weighted_vote(canonicals, [1.0] * len(canonicals))


def weighted_vote(
    canonicals: Sequence[str | None], weights: Sequence[float]
) -> tuple[str | None, float]:
    """The parsed answer with the largest summed weight, and that sum over the sample count.

    Unparsed samples (None) vote for nothing but still count in the denominator, so a question
    where most samples fail to give an answer gets a low confidence. Ties: first seen wins.
    """
    totals: dict[str, float] = defaultdict(float)
    for answer, weight in zip(canonicals, weights, strict=True):
        if answer is not None:
            totals[answer] += weight
    if not totals:
        return None, 0.0
    winner = max(totals, key=totals.__getitem__)  # dicts keep first-seen order for ties
    return winner, min(1.0, totals[winner] / len(canonicals))


def _judged(
    task: Task, text: str, choices: Choices, question: str, logprob: float | None = None
) -> Judged:
    answer = task.parse_answer(text, choices, question)
    canonical = task.canonical(answer, choices) if answer is not None else None
    return Judged(text=text, answer=answer, canonical=canonical, logprob=logprob)


def _greedy(
    student: Student,
    task: Task,
    questions: Sequence[str],
    choices: Sequence[Choices],
    prefix: str,
    cfg: EvalConfig,
    quiet: bool,
) -> list[Prediction]:
    max_new = cfg.answer_max_tokens if prefix == PREDICT else cfg.max_new_tokens
    outputs = student.generator.generate(
        [reasoning_input(prefix, q) for q in questions],
        max_new_tokens=max_new,
        batch_size=cfg.batch_size,
        max_input_tokens=cfg.max_input_tokens,
        progress=None if quiet else f"{prefix} (greedy)",
    )
    mode = "answer" if prefix == PREDICT else "cot"
    preds = []
    for question, opts, (sample,) in zip(questions, choices, outputs, strict=True):
        judged = _judged(task, sample.text, opts, question)
        preds.append(
            Prediction(
                mode=mode,
                question=question,
                answer=judged.answer,
                canonical=judged.canonical,
                confidence=sample_confidence(sample),
                cot=sample.text if mode == "cot" else None,
                samples=[judged],
            )
        )
    return preds


def sample_confidence(sample: Sample) -> float:
    """exp(mean token log-prob): the geometric-mean token probability (0 when unknown)."""
    if sample.logprob is None or not math.isfinite(sample.logprob):
        return 0.0
    return math.exp(sample.logprob)


def sample_cots(
    generator: Generator,
    questions: Sequence[str],
    cfg: EvalConfig,
    *,
    logprobs: bool,
    progress: str | None,
    seed: int,
) -> list[list[Sample]]:
    """``cfg.num_samples`` CoTs per question (``explain:``), sampled as the sampled modes do."""
    return generator.generate(
        [reasoning_input(EXPLAIN, q) for q in questions],
        num_samples=cfg.num_samples,
        sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        max_input_tokens=cfg.max_input_tokens,
        logprobs=logprobs,
        progress=progress,
        seed=seed,
    )


def _sample_cots(
    student: Student,
    task: Task,
    questions: Sequence[str],
    choices: Sequence[Choices],
    cfg: EvalConfig,
    quiet: bool,
    seed: int,
) -> list[list[Judged]]:
    outputs = sample_cots(
        student.generator,
        questions,
        cfg,
        logprobs=student.confidence is not None,
        progress=None if quiet else f"sampling {cfg.num_samples} CoTs",
        seed=seed,
    )
    return [
        [_judged(task, s.text, opts, question, s.logprob) for s in samples]
        for question, opts, samples in zip(questions, choices, outputs, strict=True)
    ]


def _judge(
    judge: Student,
    questions: Sequence[str],
    sampled: list[list[Judged]],
    cfg: EvalConfig,
    quiet: bool,
) -> list[list[Judged]]:
    """Copies of the samples with ``judge``'s verdict probabilities (one batched pass)."""
    inputs = [
        evaluation_input(VERDICT, q, s.text)
        for q, samples in zip(questions, sampled, strict=True)
        for s in samples
    ]
    probs = iter(
        judge.generator.verdict_probs(
            inputs,
            batch_size=cfg.batch_size,
            max_input_tokens=cfg.max_input_tokens,
            progress=None if quiet else "self-evaluating samples",
        )
    )
    return [[replace(s, probs=next(probs)) for s in samples] for samples in sampled]


def vote_prediction(question: str, samples: list[Judged]) -> Prediction:
    """Self-consistency: the majority answer; its first CoT is the one shown."""
    winner, share = majority([s.canonical for s in samples])
    best = next((s for s in samples if winner is not None and s.canonical == winner), None)
    return Prediction(
        mode="vote",
        question=question,
        answer=best.answer if best else None,
        canonical=winner,
        confidence=share,
        cot=best.text if best else (samples[0].text if samples else None),
        samples=samples,
    )


def mirror_prediction(
    question: str, samples: list[Judged], abstain_threshold: float, mode: str = "mirror"
) -> Prediction:
    """Votes weighted by the judge's P(correct); the CoT shown is the winning answer's most
    trusted one. Abstains when every sample is judged wrong or confidence is too low."""
    winner, confidence = weighted_vote(
        [s.canonical for s in samples], [s.p_correct for s in samples]
    )
    backers = [s for s in samples if winner is not None and s.canonical == winner]
    best = max(backers, key=lambda s: s.p_correct) if backers else None
    all_wrong = bool(samples) and all(s.verdict == "wrong" for s in samples)
    return Prediction(
        mode=mode,
        question=question,
        answer=best.answer if best else None,
        canonical=winner,
        confidence=confidence,
        cot=best.text if best else (samples[0].text if samples else None),
        verdict=best.verdict if best else None,
        abstained=winner is None or all_wrong or confidence < abstain_threshold,
        samples=samples,
    )


@dataclass
class ModeRun:
    """Predictions of one mode with the seconds spent producing them."""

    predictions: list[Prediction]
    seconds: float


def infer_modes(
    student: Student,
    task: Task,
    questions: Sequence[str],
    modes: Sequence[InferMode],
    cfg: EvalConfig,
    *,
    choices: Sequence[Choices] | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> dict[str, ModeRun]:
    """Answer every question in each requested mode.

    ``vote`` and ``mirror`` share one set of K sampled CoTs; their ``seconds`` both include the
    sampling time and ``mirror``'s adds the judging pass, so answers/s stays honest per mode.
    When the student has a separate judge, ``mirror`` is judged by it and ``mirror_final``
    (the same samples judged by the student itself) is returned too. Sampling is seeded with
    ``seed``.

    Raises:
        UserError: ``mirror`` with a combined confidence fitted on another K than
            ``cfg.num_samples``.
    """
    if "mirror" in modes and student.confidence is not None:
        student.confidence.check_samples(cfg.num_samples, "eval.num_samples")
    opts: Sequence[Choices] = choices if choices is not None else [None] * len(questions)
    runs: dict[str, ModeRun] = {}
    for mode, prefix in (("answer", PREDICT), ("cot", EXPLAIN)):
        if mode in modes:
            start = time.perf_counter()
            preds = _greedy(student, task, questions, opts, prefix, cfg, quiet)
            runs[mode] = ModeRun(preds, time.perf_counter() - start)
    if "vote" in modes or "mirror" in modes:
        start = time.perf_counter()
        sampled = _sample_cots(student, task, questions, opts, cfg, quiet, seed)
        sampling = time.perf_counter() - start
        if "vote" in modes:
            preds = [vote_prediction(q, s) for q, s in zip(questions, sampled, strict=True)]
            runs["vote"] = ModeRun(preds, sampling)
        if "mirror" in modes:
            judges = [("mirror", student.judge_or_self)]
            if student.judge is not None:
                judges.append((OWN_JUDGE_MODE, student))
            for name, judge in judges:
                start = time.perf_counter()
                judged = _judge(judge, questions, sampled, cfg, quiet)
                judging = time.perf_counter() - start
                preds = [
                    mirror_prediction(q, s, cfg.abstain_threshold, name)
                    for q, s in zip(questions, judged, strict=True)
                ]
                runs[name] = ModeRun(preds, sampling + judging)
        if "mirror" in modes and student.confidence is not None:
            runs["mirror"] = _calibrated_mirror(
                student, task, questions, opts, cfg, quiet, runs["mirror"], runs.get("answer")
            )
    if "answer" in runs and student.answer_confidence is not None:
        # After mirror's combined confidence, whose answer_prob feature is the raw probability.
        answer = runs["answer"]
        preds = calibrated_answers(answer.predictions, student.answer_confidence)
        runs["answer"] = ModeRun(preds, answer.seconds)
    return {mode: runs[mode] for mode in (*modes, OWN_JUDGE_MODE) if mode in runs}


def _calibrated_mirror(
    student: Student,
    task: Task,
    questions: Sequence[str],
    choices: Sequence[Choices],
    cfg: EvalConfig,
    quiet: bool,
    mirror: ModeRun,
    answer: ModeRun | None,
) -> ModeRun:
    """``mirror`` with the run's combined confidence (greedy ``predict:`` answers, one of its
    features, are generated here when ``answer`` mode did not run)."""
    assert student.confidence is not None
    start = time.perf_counter()
    if answer is None:
        answers = _greedy(student, task, questions, choices, PREDICT, cfg, quiet)
    else:
        answers = answer.predictions
    preds = calibrated(mirror.predictions, answers, student.confidence)
    return ModeRun(preds, mirror.seconds + time.perf_counter() - start)


def infer(
    student: Student,
    task: Task,
    questions: Sequence[str],
    mode: InferMode,
    cfg: EvalConfig,
    *,
    choices: Sequence[Choices] | None = None,
    seed: int = 0,
    quiet: bool = True,
) -> list[Prediction]:
    """Answer every question in one mode (see ``infer_modes``)."""
    runs = infer_modes(
        student, task, questions, [mode], cfg, choices=choices, seed=seed, quiet=quiet
    )
    return runs[mode].predictions
