"""Loading a trained student for inference, with the separate judge its run may have.

A two-stage ``mind_mirror`` run trains self-evaluation alone first (the ``evaluation`` stage),
then reasoning; stage 2 can erode the final student's verdict skill, so with
``eval.judge: auto`` that first stage's best student judges the final student's CoTs. An
exported student carries that judge beside it in ``judge/``. A run that trained a judge on the
student's own CoTs (``train.own_judge``) judges with that one instead, and the combined
confidence fitted beside it (``confidence.json``) is loaded with it. ``answer`` mode's
calibration (``train.answer_confidence``) lies beside the final student
(``answer_confidence.json``) and is loaded with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from mindmirror.student.infer import Student

#: The training stage that distils self-evaluation alone (``mind_mirror``'s stage 1).
SELF_EVALUATION_STAGE = "evaluation"
#: The judge trained on the student's own CoTs (``train.own_judge``); it judges when present.
OWN_JUDGE_STAGE = "own_judge"
#: Where ``mindmirror export --format hf`` puts that stage's student inside the export.
EXPORTED_JUDGE = "judge"


def run_root(path: Path) -> Path | None:
    """The run directory holding ``path`` (a run directory or a student folder inside one)."""
    for folder in [path, *path.resolve().parents][:5]:
        if (folder / "student" / "train.json").is_file() or (folder / "recipe.yaml").is_file():
            return folder
    return None


def judge_folder(path: Path) -> Path | None:
    """The separate judge of the run whose final student ``path`` is: its own-CoT judge
    (``train.own_judge``) when it trained one, else its self-evaluation stage's best student
    when that was a separate stage (``mind_mirror``), or the one ``mindmirror export`` put
    beside an exported student (``judge/``); else None."""
    if (path / EXPORTED_JUDGE / "config.json").is_file():
        return path / EXPORTED_JUDGE
    root = run_root(path)
    summary_path = root / "student" / "train.json" if root else None
    if root is None or summary_path is None or not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    stages = summary.get("stages") or {}
    stage = stages.get(OWN_JUDGE_STAGE) or stages.get(SELF_EVALUATION_STAGE) or {}
    final = summary.get("final")
    if not stage.get("best") or not final or stage["best"] == final:
        return None
    is_final = path.resolve() in (root.resolve(), (root / final).resolve())
    return root / stage["best"] if is_final else None


def load_for_inference(path: str | Path, judge: str = "auto") -> Student:
    """Load the student at ``path`` with ``answer`` mode's calibration beside it
    (``train.answer_confidence``), if any, and, with ``judge="auto"``, the separate
    self-evaluation student of its run (see ``EvalConfig.judge``), with the combined confidence
    fitted beside that judge (``train.own_judge``), if any."""
    from mindmirror.student.answer_confidence import ANSWER_CONFIDENCE_FILE, AnswerCalibration
    from mindmirror.student.confidence import CONFIDENCE_FILE, ConfidenceModel
    from mindmirror.student.model import find_student, load_student

    model, tok, kind = load_student(path)
    student = Student(model, tok, kind)
    calibration = find_student(path) / ANSWER_CONFIDENCE_FILE if Path(path).exists() else None
    if calibration is not None and calibration.is_file():
        student.answer_confidence = AnswerCalibration.load(calibration)
    folder = judge_folder(Path(path)) if judge == "auto" else None
    if folder is not None:
        j_model, j_tok, j_kind = load_student(folder)
        student.judge = Student(j_model, j_tok, j_kind)
        if (folder / CONFIDENCE_FILE).is_file():
            student.confidence = ConfidenceModel.load(folder / CONFIDENCE_FILE)
    return student
