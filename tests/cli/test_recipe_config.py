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


@pytest.mark.parametrize("name", ["../../somewhere", "a/b", "..", ".", "", "a\\b"])
def test_a_name_is_one_folder_inside_runs(name: str) -> None:
    with pytest.raises(UserError, match=r"name: .* is not a folder name.*set run_dir"):
        recipe_from_dict({}, [f"name={name}"])
    assert recipe_from_dict({}, ["name=svamp-1.5_b"]).resolved_run_dir() == Path("runs/svamp-1.5_b")


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("task.limit={train: true}", "task.limit"),
        ("teacher.temperature=false", "teacher.temperature"),
        ("experiment.seeds=[0, true]", "experiment.seeds"),
        ("eval.limit=true", "eval.limit"),
    ],
)
def test_true_or_false_is_not_a_number(override: str, where: str) -> None:
    with pytest.raises(UserError, match=rf"{where}: true/false where a number belongs"):
        recipe_from_dict({}, [override])
    recipe = recipe_from_dict({}, ["teacher.batch=true", "train.epochs=2", "eval.limit=5"])
    assert (recipe.teacher.batch, recipe.train.epochs, recipe.eval.limit) == (True, 2.0, 5)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: a\nteacher:\n  num_cots: 2\n  num_cots: 3\n")
    with pytest.raises(UserError, match=r"line 4 .*key 'num_cots' appears twice; keep one"):
        load_recipe(path)
    with pytest.raises(UserError, match=r"--set 'task.limit=\{train: 1, train: 2\}'.*twice"):
        recipe_from_dict({}, ["task.limit={train: 1, train: 2}"])
    # A merge (`<<`) is meant to be overridden: that is not a key given twice.
    path.write_text("train:\n  <<: {num_cots: 4}\n  num_cots: 3\n")
    assert load_recipe(path).train.num_cots == 3


def test_deep_nesting_and_text_that_is_not_utf8(tmp_path: Path) -> None:
    deep = "[" * 1000 + "]" * 1000
    with pytest.raises(UserError, match=r"--set seed: nested more than 16 levels deep"):
        recipe_from_dict({}, [f"seed={deep}"])
    path = tmp_path / "r.yaml"
    path.write_text(f"seed: {deep}\n")
    with pytest.raises(UserError, match=r"r.yaml: nested more than 16 levels deep"):
        load_recipe(path)
    path.write_text("seed: &x [*x]\n")  # an alias to itself: walked once, not forever
    with pytest.raises(UserError, match="seed"):
        load_recipe(path)
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 0xe9 at offset 9\); save the"):
        load_recipe(path)
