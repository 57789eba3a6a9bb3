"""``teach`` with the local backend: the embedded GGUF in-process through transformers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mindmirror.config import recipe_from_dict
from mindmirror.records import read_records
from mindmirror.rundir import RunDir
from mindmirror.teacher.teach import teach
from tests.conftest import shared_path


@pytest.mark.slow
def test_teach_with_the_local_backend(gguf_path: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    recipe = recipe_from_dict(
        {
            "run_dir": str(run.root),
            "task": {
                "name": "svamp",
                "path": str(shared_path("svamp", "dss")),
                "limit": {"train": 2, "validation": 1},
            },
            "teacher": {
                "backend": "local",
                "model": str(gguf_path),
                "num_cots": 2,
                "num_evals": 1,
                "max_tokens": 12,
                "eval_max_tokens": 8,
                "few_shot": 0,
                "batch_size": 4,
            },
        }
    )
    summary = teach(recipe, run, quiet=True)
    records = read_records(run.records)
    assert len(records) == 3
    assert all(len(r.cots) == 2 for r in records)
    assert all(len(c.evaluations) == 1 for r in records for c in r.cots)
    assert summary["cots_error"] == 0 and summary["evaluations_failed"] == 0
    # n is honoured in-process: one call per CoT prompt (3), one per evaluation (6).
    assert summary["requests"] == 3 + 6 and summary["tokens_out"] > 0
    assert records[0].teacher.backend == "local"
