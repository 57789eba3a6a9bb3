"""`serve` over real HTTP: the server process with a tiny saved student, the openai client."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from mindmirror.config import dump_recipe
from mindmirror.embedded import free_port
from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE, AnswerCalibration
from mindmirror.student.model import save_student
from tests.eval.conftest import COT_RIGHT, COT_WRONG, Q_RIGHT, Q_WRONG, Fitted, write_run


@contextmanager
def serving(path: Path, **options: object) -> Iterator[str]:
    """Base URL of a `serve_main` process over the student at ``path`` (a student folder or a
    run directory), with ``options`` passed on; its log goes beside ``path``."""
    port = free_port()
    keywords = "".join(f", {key}={value!r}" for key, value in options.items())
    code = (
        "from mindmirror.deployment.serve import serve_main; "
        f"serve_main({str(path)!r}, port={port}{keywords})"
    )
    log_path = path.parent / "serve.log"
    log = log_path.open("wb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a tiny model: threads only contend
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fitted_causal: Fitted) -> Iterator[str]:
    """Base URL of a `serve_main` process over the fitted tiny student (task: svamp)."""
    folder = tmp_path_factory.mktemp("serve") / "student"
    s = fitted_causal.student
    save_student(s.model, s.tokenizer, folder, kind="causal")
    with serving(folder, task="svamp", model_name="tiny") as url:
        yield url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server, api_key="unused", max_retries=0, timeout=60)


def test_models_lists_the_student(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_cot_with_n_returns_n_choices_like_a_teacher(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": Q_RIGHT}],
        n=3,
        temperature=0.5,
        max_tokens=24,
    )
    assert len(reply.choices) == 3
    assert sum(c.message.content == COT_RIGHT for c in reply.choices) >= 2
    extra = reply.model_extra["mindmirror"]
    assert extra["mode"] == "cot" and len(extra["samples"]) == 3
    assert reply.usage.completion_tokens > 0


def test_greedy_answer_mode(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": Q_WRONG}],
        extra_body={"mindmirror": {"mode": "answer"}},
    )
    assert reply.choices[0].message.content == "The answer is (12 + 4)."
    assert reply.model_extra["mindmirror"]["answer"] == "(12 + 4)"


def test_answer_mode_returns_the_students_calibrated_confidence_and_abstains(
    client: openai.OpenAI, fitted_causal: Fitted, tmp_path: Path
) -> None:
    def ask(to: openai.OpenAI) -> dict:
        reply = to.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": Q_WRONG}],
            extra_body={"mindmirror": {"mode": "answer"}},
        )
        return reply.model_extra["mindmirror"]

    raw = ask(client)
    assert not raw["abstained"] and 0.0 < raw["confidence"] <= 1.0
    folder = tmp_path / "calibrated"
    s = fitted_causal.student
    save_student(s.model, s.tokenizer, folder, kind="causal")
    # A calibration under whose threshold every answer falls (train.answer_confidence).
    model = AnswerCalibration(slope=2.0, intercept=-1.0, threshold=1.0, target_accuracy=0.9,
                              fitted_on=40)  # fmt: skip
    model.save(folder / ANSWER_CONFIDENCE_FILE)
    with serving(folder, task="svamp", model_name="tiny") as url:
        other = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        calibrated = ask(other)
        # Sampled answers: their probability is not what the map was fitted on; kept raw.
        sampled = other.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": Q_WRONG}],
            n=2,
            temperature=0.5,
            extra_body={"mindmirror": {"mode": "answer"}},
        ).model_extra["mindmirror"]
    assert calibrated["answer"] == raw["answer"] == "(12 + 4)"
    assert calibrated["confidence"] == pytest.approx(model.confidence(raw["confidence"]))
    assert calibrated["samples"][0]["confidence"] == calibrated["confidence"]
    assert calibrated["abstained"]
    assert not sampled["abstained"] and len(sampled["samples"]) == 2


def test_mirror_mode_returns_verdict_confidence_and_abstains(client: openai.OpenAI) -> None:
    def ask(question: str) -> tuple[str, dict]:
        reply = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": question}],
            n=3,
            temperature=0.5,
            max_tokens=24,
            extra_body={"mindmirror": {"mode": "mirror"}},
        )
        assert len(reply.choices) == 1
        return reply.choices[0].message.content, reply.model_extra["mindmirror"]

    text, right = ask(Q_RIGHT)
    assert text == COT_RIGHT
    assert (right["verdict"], right["abstained"], len(right["samples"])) == ("correct", False, 3)
    assert 0.5 < right["confidence"] <= 1.0
    text, wrong = ask(Q_WRONG)
    assert text == COT_WRONG
    assert (wrong["verdict"], wrong["abstained"]) == ("wrong", True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 99}, "n must be between 1 and 16"),
        ({"max_tokens": 100000}, "max_tokens must be between 1 and 1024"),
        ({"extra_body": {"mindmirror": {"mode": "best"}}}, "unknown mode 'best'"),
        ({"n": 2, "temperature": 0}, "n > 1 needs temperature > 0"),
        ({"messages": [{"role": "system", "content": "no question"}]}, "no user message"),
    ],
)
def test_bad_requests_get_400_with_a_clear_message(
    client: openai.OpenAI, kwargs: dict, message: str
) -> None:
    request = {"model": "tiny", "messages": [{"role": "user", "content": Q_RIGHT}], **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert message in caught.value.body["message"]


def test_oversized_body_and_bad_json(server: str) -> None:
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 70000}]}
    response = httpx.post(f"{server}/chat/completions", json=big, timeout=30)
    assert response.status_code == 413
    assert "request body over 65536 bytes" in response.json()["error"]["message"]
    response = httpx.post(f"{server}/chat/completions", content=b"{nope", timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not valid JSON"
    assert httpx.get(f"{server}/nowhere", timeout=30).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "not valid UTF-8 (byte 46)"),
        (b"[" * 30000 + b"]" * 30000, "nested too deeply to be a chat request"),
        (b'{"messages": [{"role": "user", "content": "\\ud800?"}]}', "lone surrogate"),
    ],
)
def test_bodies_that_are_not_utf8_json_get_400(server: str, body: bytes, message: str) -> None:
    response = httpx.post(f"{server}/chat/completions", content=body, timeout=30)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_a_chunked_body_is_read_only_up_to_the_limit(server: str) -> None:
    """Without Content-Length the server stops reading at serve.max_body_bytes and answers 413
    at once, instead of holding the whole upload in memory first (the body never ends here)."""
    port = int(server.removesuffix("/v1").rsplit(":", 1)[1])
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(2)  # a server that stopped reading blocks the sender: stop sending then
        while sent < 96 * 2**20 and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (TimeoutError, OSError):
                break
            sent += 65536
        sock.settimeout(30)
        reply = b""
        while b"}}" not in reply:  # the JSON error body ends the response
            part = sock.recv(65536)
            assert part, reply
            reply += part
    reply_text = reply.decode("latin-1")
    assert reply_text.startswith("HTTP/1.1 413"), reply_text[:200]
    assert "request body over 65536 bytes" in reply_text
    assert sent < 64 * 2**20, sent  # it answered long before the upload could be read whole


def test_bad_overrides_and_a_taken_port_fail_before_the_model_loads(tmp_path: Path) -> None:
    """No student exists at the path: an error about the port proves nothing was loaded."""
    from tests.cli.test_cli_errors import assert_one_line_error, mindmirror

    missing = str(tmp_path / "no-student")
    result = mindmirror("serve", missing, "--port", "70000", cwd=tmp_path)
    assert_one_line_error(result, "--port 70000", "65535")
    result = mindmirror("serve", missing, "--mode", "evil", cwd=tmp_path)
    assert_one_line_error(result, "unknown mode 'evil'")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = mindmirror("serve", missing, "--task", "svamp", "--port", port, cwd=tmp_path)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use")
    assert "serving" not in result.stdout + result.stderr


def test_mirror_is_refused_for_a_student_that_never_learnt_to_judge(
    tmp_path: Path, fitted_causal: Fitted
) -> None:
    """At start (--mode mirror, or the recipe's serve.mode) and per request: its verdicts
    would come from an untrained judge."""
    from tests.cli.test_cli_errors import assert_one_line_error, mindmirror

    recipe, run = write_run(tmp_path, fitted_causal)
    recipe.train.method = "multi_cot"
    run.recipe.write_text(dump_recipe(recipe))
    reason = "mode mirror needs a student that learnt to judge its CoTs, and this one was "
    reason += "trained with multi_cot"
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a server that started stops here
        port = str(taken.getsockname()[1])
        result = mindmirror(
            "serve", str(run.root), "--mode", "mirror", "--port", port, cwd=tmp_path
        )
        assert_one_line_error(result, reason, "use mode vote or cot")
        recipe.serve.mode = "mirror"
        run.recipe.write_text(dump_recipe(recipe))
        assert_one_line_error(
            mindmirror("serve", str(run.root), "--port", port, cwd=tmp_path), reason
        )
    recipe.serve.mode = "cot"
    run.recipe.write_text(dump_recipe(recipe))
    with serving(run.root) as url:
        request = {"messages": [{"role": "user", "content": Q_RIGHT}], "max_tokens": 24}
        reply = httpx.post(f"{url}/chat/completions", json=request, timeout=60)
        assert reply.json()["choices"][0]["message"]["content"] == COT_RIGHT
        request["mindmirror"] = {"mode": "mirror"}
        reply = httpx.post(f"{url}/chat/completions", json=request, timeout=60)
        assert reply.status_code == 400 and reason in reply.json()["error"]["message"]


def test_teach_can_use_the_served_student_as_its_teacher(server: str, tmp_path: Path) -> None:
    """`teach` against `serve`: the project is its own OpenAI-compatible teacher server."""
    from mindmirror.config import recipe_from_dict
    from mindmirror.records import read_records
    from mindmirror.rundir import RunDir
    from mindmirror.teacher.teach import teach

    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"question": Q_RIGHT, "answer": "( 3.0 + 4.0 )"},
        {"question": Q_WRONG, "answer": "( 12.0 - 4.0 )"},
    ]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "test.jsonl").write_text(json.dumps({"question": "2 + 2?", "answer": "4"}) + "\n")
    recipe = recipe_from_dict(
        {
            "run_dir": str(tmp_path / "run"),
            "task": {
                "name": "generic",
                "family": "equation",
                "path": str(data),
                "val_fraction": 0.0,
            },
            "teacher": {
                "backend": "openai",
                "base_url": server,
                "model": "tiny",
                "num_cots": 2,
                "num_evals": 1,
                "evaluator": "gold",
                "few_shot": 0,
                "max_tokens": 24,
                "splits": ["train"],
                "concurrency": 2,
            },
        }
    )
    run = RunDir(tmp_path / "run")
    teach(recipe, run, quiet=True)
    records = read_records(run.records)
    assert sorted(r.question for r in records) == sorted([Q_RIGHT, Q_WRONG])
    assert all(len(r.cots) == 2 and all(c.status != "error" for c in r.cots) for r in records)
