"""Recipes: YAML in, validated pydantic models out, dotted ``--set`` overrides.

One recipe describes one run: the task, the teacher, the student and the evaluation. Unknown
keys are errors that name the key and the nearest valid one, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mindmirror.config.base import SplitName, Strict
from mindmirror.config.evaluation import (
    EvalConfig,
    ExperimentConfig,
    ExperimentMethod,
    InferMode,
    ServeConfig,
)
from mindmirror.config.task import FieldMap, TaskConfig
from mindmirror.config.teacher import ImportConfig, TeacherConfig
from mindmirror.config.train import Tracker, TrainConfig
from mindmirror.errors import UserError

__all__ = [
    "EvalConfig",
    "ExperimentConfig",
    "ExperimentMethod",
    "FieldMap",
    "ImportConfig",
    "InferMode",
    "Recipe",
    "ServeConfig",
    "SplitName",
    "Strict",
    "TaskConfig",
    "TeacherConfig",
    "Tracker",
    "TrainConfig",
    "dump_recipe",
    "load_recipe",
    "parse_overrides",
    "recipe_from_dict",
]


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

    @field_validator("name")
    @classmethod
    def _single_folder_name(cls, name: str) -> str:
        # runs/<name> must stay inside runs/: no separators, no '..', not runs/ itself.
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError(
                f"{name!r} is not a folder name: give one path component (letters, digits, "
                "-, _), or set run_dir to put the run elsewhere"
            )
        return name

    @model_validator(mode="after")
    def _teacher_can_judge_own_cots(self) -> Recipe:
        own = self.train.own_judge
        if own is None or own.labels != "teacher":
            return self
        imported = self.teacher.backend == "import"
        if imported and (self.teacher.import_ is None or not self.teacher.import_.evaluate_with):
            raise ValueError(
                "train.own_judge.labels teacher asks a live teacher to judge the student's "
                "CoTs, and teacher.backend import has none: set teacher.import.evaluate_with "
                "(openai or local), or train.own_judge.labels gold"
            )
        if self.teacher.num_evals < 1:
            raise ValueError(
                "train.own_judge.labels teacher needs teacher.num_evals >= 1 (evaluations of "
                "each of the student's CoTs)"
            )
        return self

    def resolved_run_dir(self) -> Path:
        """The run directory this recipe writes to."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name


# ---------------------------------------------------------------------------- loading

#: Deeper than any recipe needs (sections of keys, short lists); deeper input is refused up
#: front, where PyYAML's and pydantic's recursion would otherwise end in a traceback.
MAX_DEPTH = 16


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    keeps the last one silently, so a recipe could read one way and run another)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges are meant to be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base loader reports it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice; keep one", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value``'s dicts and lists nest more than ``limit`` levels (iterative, and each
    container is walked once, so YAML aliases and self-references cost nothing extra)."""
    stack = [(value, 0)]
    best: dict[int, int] = {}  # id of a container -> the shallowest depth it was seen at
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth >= limit:
            return True
        if best.get(id(node), limit) <= depth:
            continue
        best[id(node)] = depth
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_yaml(text: str, where: str) -> Any:
    """YAML text as Python data: duplicate keys refused, nesting capped at ``MAX_DEPTH``.

    Raises:
        yaml.YAMLError: malformed YAML or a duplicate key (with its position).
        UserError: nested deeper than ``MAX_DEPTH``.
    """
    deep = UserError(
        f"{where}: nested more than {MAX_DEPTH} levels deep; a recipe is sections of keys and "
        "short lists"
    )
    try:
        data = yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader: plain data only
    except RecursionError:
        raise deep from None
    if too_deep(data):
        raise deep
    return data


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
            value = parse_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
        except yaml.constructor.ConstructorError as error:
            raise UserError(f"--set {item!r}: {error.problem}") from None
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


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; UserError naming the file and the fix otherwise."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}); save the {what} as UTF-8"
        ) from None
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror or error}") from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply ``--set`` overrides, validate it.

    Raises:
        UserError: missing or unreadable file, text that is not UTF-8, bad YAML (a key twice,
            nesting past ``MAX_DEPTH``), unknown key (with the nearest valid one), bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    try:
        data = parse_yaml(read_text(path, "recipe"), str(path)) or {}
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
