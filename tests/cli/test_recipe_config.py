"""Recipe validation and dotted overrides (pure, no files beyond tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mindmirror.config import Recipe, dump_recipe, load_recipe, parse_overrides, recipe_from_dict
from mindmirror.errors import UserError


def test_overrides_are_yaml_scalars_and_create_nested_keys() -> None:
    recipe = recipe_from_dict(
        {"name": "x"},
        ["teacher.temperature=0.9", "teacher.splits=[train, test]", "task.limit.train=5"],
    )
    assert recipe.teacher.temperature == 0.9
    assert recipe.teacher.splits == ["train", "test"]
    assert recipe.task.limit == {"train": 5}
    assert parse_overrides(["a.b=true", "c="]) == [("a.b", True), ("c", "")]


def test_unknown_nested_key_suggests_the_nearest() -> None:
    with pytest.raises(UserError, match=r"unknown key 'task\.fields\.questoin'.*'question'"):
        recipe_from_dict({"task": {"fields": {"questoin": "q"}}})
    with pytest.raises(UserError, match=r"unknown key 'teachr'.*'teacher'"):
        recipe_from_dict({"teachr": {}})


def test_cross_field_rules_are_errors_with_the_fix() -> None:
    with pytest.raises(UserError, match="generic task needs `family`"):
        recipe_from_dict({"task": {"name": "generic"}})
    with pytest.raises(UserError, match="needs an `import:` section"):
        recipe_from_dict({"teacher": {"backend": "import"}})


def test_override_into_a_scalar_is_refused() -> None:
    with pytest.raises(UserError, match="not a section"):
        recipe_from_dict({"seed": 1}, ["seed.x=2"])


def test_dump_round_trips(tmp_path: Path) -> None:
    recipe = recipe_from_dict(
        {"name": "r", "teacher": {"backend": "import", "import": {"format": "dss", "path": "d"}}}
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(dump_recipe(recipe))
    assert "import" in yaml.safe_load(path.read_text())["teacher"]
    assert load_recipe(path) == recipe
    assert Recipe().resolved_run_dir() == Path("runs/run")
