"""The demo's packaged recipe and the overrides `mindmirror demo` puts on it."""

from __future__ import annotations

from pathlib import Path

from mindmirror.config import load_recipe
from mindmirror.demo import demo_overrides, demo_recipe_path


def test_the_packaged_recipe_loads_with_the_demo_overrides(tmp_path: Path) -> None:
    overrides = demo_overrides(tmp_path / "demo", None, "gpt-4o-mini", ["train.max_steps=2"])
    assert overrides == [f"run_dir={tmp_path / 'demo'}", "train.max_steps=2"]
    recipe = load_recipe(demo_recipe_path(), overrides)
    assert recipe.teacher.backend == "embedded" and recipe.train.max_steps == 2
    assert recipe.resolved_run_dir() == tmp_path / "demo"


def test_a_teacher_url_switches_to_that_openai_compatible_teacher(tmp_path: Path) -> None:
    overrides = demo_overrides(tmp_path, "http://127.0.0.1:9/v1", "qwen", None)
    recipe = load_recipe(demo_recipe_path(), overrides)
    assert recipe.teacher.backend == "openai"
    assert recipe.teacher.base_url == "http://127.0.0.1:9/v1" and recipe.teacher.model == "qwen"
