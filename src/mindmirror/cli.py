"""The `mindmirror` command line: thin Typer commands that parse arguments and call one function.

Every command has the shape ``mindmirror COMMAND RECIPE.yaml [--set key=value ...]`` except
``demo`` (needs nothing). User errors print one line and exit with code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mindmirror.config import Recipe, load_recipe
from mindmirror.embedded import embedded_endpoint
from mindmirror.errors import UserError
from mindmirror.progress import log_console, quiet_libraries
from mindmirror.rundir import RunDir, usable_run_dir

app = typer.Typer(
    help="Distil a teacher LLM's reasoning and its self-evaluation into a small student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = log_console()
F = TypeVar("F", bound=Callable[..., Any])

RecipeArg = Annotated[Path, typer.Argument(help="The recipe YAML (names the run directory).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe value, e.g. --set teacher.temperature=0.9."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def _version(value: bool) -> None:
    if value:
        from mindmirror import __version__

        print(f"mindmirror {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Also show the progress bars and warnings of transformers, huggingface_hub "
            "and datasets (hidden by default).",
        ),
    ] = False,
) -> None:
    """Distil a teacher LLM's reasoning and its self-evaluation into a small student."""
    if not verbose:
        quiet_libraries()


def user_errors(func: F) -> F:
    """Print a UserError as one red line and exit 2 (no traceback for user mistakes)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as error:
            console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: re-run the same command to resume")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def open_run(recipe: Path, overrides: list[str] | None) -> tuple[Recipe, RunDir]:
    """The resolved recipe (with ``--set`` overrides) and its run directory."""
    resolved = load_recipe(recipe, overrides)
    return resolved, usable_run_dir(resolved.resolved_run_dir())


def teach_if_needed(recipe: Recipe, run: RunDir, quiet: bool) -> None:
    """Teach unless matching records exist, and print the teacher table."""
    from mindmirror.grid_teaching import teach_unless_taught
    from mindmirror.teacher.summary import summary_table

    summary = teach_unless_taught(recipe, run, quiet)
    if summary is not None:
        Console().print(summary_table(summary))


@app.command()
@user_errors
def data(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Load the recipe's task and show split sizes, sample ids, questions and golds (and, for
    an import, how many entries match), without any teacher; writes nothing."""
    from mindmirror.data_view import describe

    resolved, _ = open_run(recipe, set_)
    for line in describe(resolved):
        print(line)


@app.command()
@user_errors
def teach(
    recipe: RecipeArg,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    pay_again: Annotated[
        bool,
        typer.Option(
            "--pay-again",
            help="Request, and pay for, again the samples of a run whose teacher cache was "
            "emptied or lost (teach refuses without it when teacher/summary.json records them).",
        ),
    ] = False,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Request nothing: print the expected requests, tokens and dollars of the "
            "recipe (fixed and adaptive settings) and write teacher/estimate.json.",
        ),
    ] = False,
) -> None:
    """Sample N CoTs per question from the teacher, then M self-evaluations per CoT.

    Writes teacher/records.jsonl and teacher/summary.json in the run directory. Every response
    is cached in teacher/cache.sqlite: re-running resumes and pays for nothing twice.

    \b
    Paying for an API teacher (OpenAI)? --set teacher.batch=true sends the requests through
    its Batch API: half the price, results within 24 hours instead of minutes. Choose it for
    large runs that can wait; a killed teach resumes the same batch (teacher/batches.json).
    """
    from mindmirror.teacher.summary import summary_table
    from mindmirror.teacher.teach import teach as run_teach

    resolved, run = open_run(recipe, set_)
    if estimate:
        from mindmirror.teacher.estimate import write_estimate

        Console().print(write_estimate(resolved, run))
        return
    with embedded_endpoint(resolved, quiet) as live:
        summary = run_teach(live, run, quiet=quiet, pay_again=pay_again)
    Console().print(summary_table(summary))
    console.print(f"records: {run.records}")


@app.command()
@user_errors
def train(recipe: RecipeArg, set_: SetOpt = None, quiet: QuietOpt = False) -> None:
    """Train the student with the recipe's method; the best checkpoint is chosen on validation.

    Multi-process: ``accelerate launch --multi_gpu --num_processes 2 -m mindmirror train RECIPE``
    (on a machine without GPUs this starts 2 CPU processes over gloo).
    """
    from mindmirror.student.train import train as run_train
    from mindmirror.teacher.judge_cots import cot_judge

    resolved, rundir = open_run(recipe, set_)
    summary = run_train(
        resolved, rundir, quiet=quiet, judge_cots=cot_judge(resolved, rundir, quiet)
    )
    console.print(f"student: {summary.get('final', summary)}")


ModesOpt = Annotated[
    list[str] | None,
    typer.Option("--mode", help="Inference mode to score (repeat): answer, cot, vote, mirror."),
]


@app.command("eval")
@user_errors
def eval_(
    recipe: RecipeArg, set_: SetOpt = None, mode: ModesOpt = None, quiet: QuietOpt = False
) -> None:
    """Score the trained student on the test split in each mode (eval/metrics.json)."""
    from mindmirror.evaluate import evaluate, summary_lines

    metrics = evaluate(*open_run(recipe, set_), mode, quiet=quiet)
    for line in summary_lines(metrics):
        print(line)


@app.command()
@user_errors
def report(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Write report.md, report.html and plots/*.png from what the run directory holds."""
    from mindmirror.reporting.report import main_table
    from mindmirror.reporting.report import report as write_report

    _, run = open_run(recipe, set_)
    path = write_report(run)
    print(main_table(run))
    console.print(f"report: {path}")


@app.command()
@user_errors
def run(recipe: RecipeArg, set_: SetOpt = None, quiet: QuietOpt = False) -> None:
    """The whole pipeline from one recipe: teach -> train -> eval -> report (each resumes)."""
    from mindmirror.evaluate import evaluate, summary_lines
    from mindmirror.reporting.report import main_table
    from mindmirror.reporting.report import report as write_report
    from mindmirror.student.train import train as run_train
    from mindmirror.teacher.judge_cots import cot_judge

    resolved, rundir = open_run(recipe, set_)
    teach_if_needed(resolved, rundir, quiet)
    run_train(resolved, rundir, quiet=quiet, judge_cots=cot_judge(resolved, rundir, quiet))
    for line in summary_lines(evaluate(resolved, rundir, None, quiet=quiet)):
        print(line)
    path = write_report(rundir)
    print(main_table(rundir))
    console.print(f"report: {path}")


StudentArg = Annotated[Path, typer.Argument(help="A run directory or a trained student's folder.")]
TaskOpt = Annotated[
    str | None,
    typer.Option(help="Task family when PATH is a bare student folder (svamp, gsm8k, cqa, ...)."),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        help="answer, cot, vote or mirror (default: answer for students trained without CoTs "
        "(standard, distill), else the run's serve.mode, cot unless set)."
    ),
]

EngineOpt = Annotated[
    str | None, typer.Option(help="auto, transformers, llama_cpp or openai (eval.engine).")
]
EngineUrlOpt = Annotated[
    str | None, typer.Option(help="A server hosting the student, .../v1 (--engine openai).")
]


@app.command()
@user_errors
def predict(
    path: StudentArg,
    question: Annotated[
        list[str] | None, typer.Option("--question", help="A question (repeat).")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL with a `question` per line.")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where the JSONL answers go.")
    ] = None,
    mode: ModeOpt = None,
    task: TaskOpt = None,
    engine: EngineOpt = None,
    engine_url: EngineUrlOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Answer questions with a trained student: answer, CoT, verdict and confidence."""
    from mindmirror.predict import predict as run_predict
    from mindmirror.predict import predict_file

    if input_file is not None:
        if output_file is None:
            raise UserError("--input needs --output (JSONL in, JSONL out)")
        count = predict_file(
            path, input_file, output_file, mode, task=task, engine=engine,
            engine_url=engine_url, quiet=quiet,
        )  # fmt: skip
        console.print(f"{count} answers written to {output_file}")
        return
    if not question:
        raise UserError("give --question TEXT (repeatable) or --input FILE.jsonl --output OUT")
    predictions = run_predict(
        path, question, mode, task=task, engine=engine, engine_url=engine_url, quiet=quiet
    )
    for prediction in predictions:
        print(json.dumps(prediction.to_dict(), ensure_ascii=False))


@app.command()
@user_errors
def serve(
    path: StudentArg,
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default: the run's serve.host, 127.0.0.1 unless set)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="TCP port (default: the run's serve.port, 8000 unless set; 0 = any)."),
    ] = None,
    mode: ModeOpt = None,
    task: TaskOpt = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable holding a key: every request must then send "
            "Authorization: Bearer <key> (401 otherwise). The key is never logged."
        ),
    ] = None,
    engine: EngineOpt = None,
    engine_url: EngineUrlOpt = None,
) -> None:
    """Serve a trained student as an OpenAI-compatible API (/v1/chat/completions)."""
    from mindmirror.deployment.serve import serve_main

    serve_main(
        path, host, port, mode=mode, task=task, api_key_env=api_key_env, engine=engine,
        engine_url=engine_url,
    )  # fmt: skip


@app.command()
@user_errors
def export(
    path: StudentArg,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="hf: a merged Hugging Face folder (predict and serve take it); gguf: one file "
            "for llama.cpp (causal Llama students); ollama: that file and a Modelfile.",
        ),
    ] = "hf",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder (or .gguf file) to write; default RUN/export/FORMAT for a run "
            "directory, else exports/NAME-FORMAT.",
        ),
    ] = None,
    quant: Annotated[
        str,
        typer.Option(
            help="GGUF type: f16 (default), f32, q8_0, or llama.cpp's q4_k_m, q5_k_m, ..."
        ),
    ] = "f16",
    push_to_hub: Annotated[
        str | None,
        typer.Option(help="Upload the result to this Hugging Face repository (NAMESPACE/NAME)."),
    ] = None,
) -> None:
    """Export a trained student for deployment: Hugging Face folder, GGUF, or Ollama."""
    from mindmirror.deployment.export import export as run_export

    result = run_export(path, format_, output, quant=quant, push_to_hub=push_to_hub)
    for file in result.files:
        console.print(f"wrote {file}")
    if result.left_out:
        console.print(
            f"[yellow]note[/]: --format {format_} carries the weights only; left out: "
            f"{'; '.join(result.left_out)} (--format hf keeps them)"
        )
    if result.hub_url:
        console.print(f"uploaded to {result.hub_url}")


@app.command()
@user_errors
def experiment(
    recipe: RecipeArg,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    only_finished: Annotated[
        bool,
        typer.Option(
            "--only-finished",
            help="Teach, train and score nothing: the table and report of the finished cells, "
            "the others listed as missing.",
        ),
    ] = False,
) -> None:
    """The paper's comparison grid (methods x num_cots x seeds) from one recipe; resumable."""
    from mindmirror.experiment import experiment as run_experiment

    resolved, rundir = open_run(recipe, set_)
    if not only_finished:
        teach_if_needed(resolved, rundir, quiet)
    result = run_experiment(resolved, rundir, quiet=quiet, only_finished=only_finished)
    print(result["markdown"])
    if result["missing"]:
        console.print(f"not finished, left out: {', '.join(result['missing'])}")
    if result["report"] is not None:
        console.print(f"report: {result['report']}")


@app.command()
@user_errors
def demo(
    run_dir: Annotated[Path, typer.Option(help="Where the demo's run directory goes.")] = Path(
        "runs/demo"
    ),
    teacher_url: Annotated[
        str | None,
        typer.Option(help="Use this OpenAI-compatible teacher instead of the embedded model."),
    ] = None,
    teacher_model: Annotated[
        str, typer.Option(help="Model name at --teacher-url.")
    ] = "gpt-4o-mini",
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole pipeline offline: teach -> train (step_by_step, mind_mirror) -> eval -> report.

    The teacher is the embedded SmolLM2-135M-Instruct served by llama.cpp on loopback (or
    --teacher-url), the student the same small model; the task is generated arithmetic word
    problems. Re-running resumes from what the run directory already holds.
    """
    from mindmirror.demo import run_demo

    run_demo(run_dir, teacher_url, teacher_model, set_, quiet)


def main() -> None:
    """Entry point for ``python -m mindmirror``."""
    app(prog_name="mindmirror")


if __name__ == "__main__":
    sys.exit(main())
