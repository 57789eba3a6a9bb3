"""Failures that must be loud: one line and a non-zero exit, before anything costly happens."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mindmirror.config import recipe_from_dict
from mindmirror.errors import UserError
from mindmirror.evaluate import evaluate
from mindmirror.rundir import RunDir
from tests.cli.test_cli_errors import (
    assert_one_line_error,
    generic_recipe,
    mindmirror,
    write_recipe,
)

REPLY = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "5"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@contextmanager
def teacher_failing(every: int) -> Iterator[str]:
    """A real OpenAI-style endpoint on loopback whose chat completions fail with a 500 on every
    ``every``-th request (1: all of them); its base URL."""
    count = {"chat": 0}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            count["chat"] += 1
            if count["chat"] % every == 0:
                self._answer(500, {"error": {"message": "the model crashed"}})
            else:
                self._answer(200, REPLY)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def failing_teacher_recipe(tmp_path: Path, url: str) -> Path:
    recipe = generic_recipe(
        tmp_path, base_url=url, model="m", max_retries=0, concurrency=1, use_n=False
    )
    return write_recipe(tmp_path / "r.yaml", recipe)


def test_teach_fails_in_one_line_when_every_teacher_request_failed(tmp_path: Path) -> None:
    with teacher_failing(every=1) as url:
        result = mindmirror("teach", str(failing_teacher_recipe(tmp_path, url)), "-q", cwd=tmp_path)
    assert_one_line_error(result, "12 of 12 teacher samples failed", "the model crashed")
    assert "mindmirror teach" in result.stderr
    assert not (tmp_path / "run" / "teacher" / "records.jsonl").exists()


def test_teach_warns_once_when_a_few_requests_failed(tmp_path: Path) -> None:
    with teacher_failing(every=4) as url:
        result = mindmirror("teach", str(failing_teacher_recipe(tmp_path, url)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "3 of 12 teacher samples failed" in warnings[0]
    # stderr is a pipe here: the engine's progress comes as plain lines, not a silent bar,
    # and the final one counts the failures among the finished samples.
    assert "teacher: CoTs: 0/12 started" in result.stderr
    assert "teacher: CoTs: 12/12 (100%, 3 failed)" in result.stderr
    assert "done in" in result.stderr
    assert (tmp_path / "run" / "teacher" / "records.jsonl").is_file()


def test_task_limits_are_counts_of_at_least_one(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", generic_recipe(tmp_path))
    result = mindmirror("teach", str(path), "--set", "task.limit.train=-5", cwd=tmp_path)
    assert_one_line_error(result, "limit.train", "-5", ">= 1")
    assert not (tmp_path / "run").exists()


def test_predict_rejects_a_bad_mode_before_loading_anything(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-student")
    result = mindmirror("predict", missing, "--question", "1 + 1?", "--mode", "evil", cwd=tmp_path)
    assert_one_line_error(result, "unknown mode 'evil'")


def test_q_is_quiet_everywhere_and_help_states_the_default_mode(tmp_path: Path) -> None:
    rule = "default: answer for students trained without CoTs (standard, distill), else"
    for command in ("predict", "serve"):
        text = " ".join(mindmirror(command, "--help", cwd=tmp_path).stdout.split())
        assert rule in text, command
    predict_help = " ".join(mindmirror("predict", "--help", cwd=tmp_path).stdout.split())
    assert "--quiet -q" in predict_help and "--question -q" not in predict_help


def eval_recipe(tmp_path: Path) -> dict:
    """A generic task with a test split (the run has no student yet)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    (data / "train.jsonl").write_text(json.dumps({"question": "2 + 2?", "answer": "4"}) + "\n")
    task = {"name": "generic", "family": "number", "path": str(data)}
    return {"name": "e", "run_dir": str(tmp_path / "run"), "task": task}


def test_eval_before_train_says_train_first(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", eval_recipe(tmp_path))
    (tmp_path / "run" / "teacher").mkdir(parents=True)
    result = mindmirror("eval", str(path), "-q", cwd=tmp_path)
    assert_one_line_error(result, "no trained student", "train first")


def test_eval_reads_the_records_before_any_inference(tmp_path: Path) -> None:
    """Bad records fail at once with the fix, even where the student could not load at all."""
    recipe = recipe_from_dict(eval_recipe(tmp_path))
    run = RunDir(tmp_path / "run")
    (run.stage("stage2") / "best").mkdir(parents=True)  # not a model: loading it would fail
    (run.student / "train.json").write_text(json.dumps({"final": "student/stage2/best"}))
    run.teacher.mkdir()
    run.records.write_text('{"id": "generic-test-0"}\n')
    with pytest.raises(UserError, match="re-run `mindmirror teach`"):
        evaluate(recipe, run, quiet=True)
