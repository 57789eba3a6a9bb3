"""Student-side fixtures: hand-made teacher records, a tiny tokenizer, tiny T5 and Llama models.

The models are randomly initialised from small configs and saved as ordinary Hugging Face
folders, so the code under test loads them exactly as it loads a real student.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from mindmirror.records import Cot, Evaluation, Record, TeacherInfo
from mindmirror.tasks.families import EquationTask

TEACHER = TeacherInfo(model="hand-made", backend="import")
SPECIALS = ["<pad>", "</s>", "<s>"]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a shared, busy machine several threads per
    process spin against each other and make each step tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def evaluation(verdict: str | None, text: str | None = None) -> Evaluation:
    """A teacher evaluation ending in the paper's verdict sentence (unparsed when None)."""
    if verdict is None:
        return Evaluation(text=text or "I cannot tell.", verdict=None, parsed=False)
    body = f"Checked the steps. Evaluation result: the given answer is {verdict}."
    body = body if text is None else text
    return Evaluation(text=body, verdict=verdict, parsed=True)  # type: ignore[arg-type]


def cot(text: str, answer: str | None, correct: bool | None, evals: list[Evaluation]) -> Cot:
    """A CoT; ``answer=None`` makes it unparsed."""
    return Cot(
        text=text,
        answer=answer,
        parsed=answer is not None,
        correct=correct if answer is not None else False,
        status="ok" if answer is not None else "unparsed",
        evaluations=evals,
    )


def arithmetic_record(split: str, index: int, a: int, b: int) -> Record:
    """A one-step addition question with 3 CoTs: right, right again, and one unparsed.

    Each parsed CoT carries two evaluations: ``correct`` twice for the first, ``correct`` and
    ``wrong`` for the second; the unparsed CoT has one evaluation that must never be used.
    """
    question = f"Tom has {a} apples and buys {b} more. How many apples does Tom have now?"
    right = f"Tom starts with {a} apples and buys {b}, so {a} + {b} = {a + b}."
    right += f" The answer is ({a} + {b})."
    again = f"{a} apples plus {b} apples make {a + b}. The answer is ({a} + {b})."
    return Record(
        id=f"toy-{split}-{index}",
        split=split,  # type: ignore[arg-type]
        question=question,
        gold=f"( {a}.0 + {b}.0 )",
        cots=[
            cot(right, f"({a} + {b})", True, [evaluation("correct"), evaluation("correct")]),
            cot("Tom has many apples.", None, None, [evaluation("wrong")]),
            cot(again, f"({a} + {b})", True, [evaluation("correct"), evaluation("wrong")]),
        ],
        teacher=TEACHER,
    )


def toy_records() -> list[Record]:
    """8 train, 3 validation and 2 test questions."""
    numbers = [
        (3, 5),
        (7, 2),
        (4, 4),
        (9, 1),
        (6, 3),
        (2, 8),
        (5, 5),
        (1, 7),
        (8, 6),
        (3, 9),
        (2, 2),
        (6, 6),
        (4, 9),
    ]
    splits = ["train"] * 8 + ["validation"] * 3 + ["test"] * 2
    return [
        arithmetic_record(s, i, a, b)
        for i, (s, (a, b)) in enumerate(zip(splits, numbers, strict=True))
    ]


@pytest.fixture
def records() -> list[Record]:
    """Fresh hand-made records (tests may modify them)."""
    return toy_records()


@pytest.fixture(scope="session")
def task() -> EquationTask:
    """The SVAMP scorer: equations compared by value."""
    return EquationTask("svamp")


def corpus() -> list[str]:
    """Texts the tiny tokenizer learns its merges from: the toy records and the formats."""
    texts = ["predict: explain: verdict: critique: Question: Answer: The answer is"]
    for record in toy_records():
        texts.append(record.question)
        for c in record.cots:
            texts.append(c.text)
            texts += [e.text for e in c.evaluations]
    return texts


def tiny_tokenizer(kind: str, texts: list[str], vocab: int = 600) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (exact round trip); seq2seq ones append ``</s>`` like T5."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    if kind == "seq2seq":
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", SPECIALS.index("</s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>"
    )


def save_tiny_student(kind: str, folder: Path, texts: list[str], width: int = 32) -> Path:
    """A randomly initialised tiny T5 (seq2seq) or Llama (causal) student saved to ``folder``."""
    tokenizer = tiny_tokenizer(kind, texts)
    vocab = len(tokenizer)
    if kind == "seq2seq":
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=vocab,
                d_model=width,
                d_ff=2 * width,
                d_kv=width // 2,
                num_layers=2,
                num_heads=2,
                pad_token_id=0,
                eos_token_id=1,
                decoder_start_token_id=0,
                dropout_rate=0.0,
            )
        )
    else:
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=width,
                intermediate_size=2 * width,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=1024,
                pad_token_id=0,
                eos_token_id=1,
                bos_token_id=2,
            )
        )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random T5 student."""
    return save_tiny_student("seq2seq", tmp_path_factory.mktemp("tiny-t5"), corpus())


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Llama-style student."""
    return save_tiny_student("causal", tmp_path_factory.mktemp("tiny-llama"), corpus())
