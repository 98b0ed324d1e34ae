"""The app as a whole: global options, help with examples, the error boundary, lazy TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from micmon_cli.app import app


def _registered() -> dict:
    import typer.main

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


#: Every registered command, found by walking the app (not a hand-written list).
COMMANDS = sorted(_registered())


def test_version_names_the_litert_runtime(invoke) -> None:
    from micmon import __version__
    from micmon.model.runtime import runtime

    result = invoke(["--version"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"micmon {__version__}"
    assert f"runtime: {runtime().name} {runtime().version}" in lines
    assert any(line.startswith("training: tensorflow ") for line in lines)


def test_verbose_says_which_runtime_scores(invoke, cli_model: Path, cli_audio: Path) -> None:
    from micmon.model.runtime import runtime_name

    result = invoke(["-v", "predict", "--model", cli_model, cli_audio / "sample_1"])
    assert result.exit_code == 0, result.output
    assert f"scoring with {runtime_name()}" in " ".join(result.stderr.split())


def test_train_without_tensorflow_is_one_line(
    invoke, assert_error, cli_data: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("keras", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # as on a Pi with the base install
    result = invoke(
        ["train", cli_data, "model-out", "--epochs", "1"], env={"MICMON_CONFIG": str(empty_config)}
    )
    assert_error(result, "training needs TensorFlow", "pip install 'micmon[train]'")
    assert not Path("model-out").exists()


def test_help_lists_every_command(invoke) -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_ends_with_an_example(invoke, name: str) -> None:
    import typer.main

    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    last = [p.strip() for p in (command.help or "").strip().split("\n\n")][-1]
    assert last.startswith("Example: micmon") and f" {name}" in last, last
    result = invoke([name, "--help"])
    assert result.exit_code == 0
    assert " ".join(last.split()) in " ".join(result.stdout.split())


def test_registered_commands_all_have_examples(invoke) -> None:
    """Commands added later (monitor, evaluate) follow the same rule."""
    import typer.main

    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        last = (command.help or "").strip().split("\n\n")[-1].strip()
        assert last.startswith("Example:"), (name, last)


def test_error_is_one_line_and_verbose_adds_the_traceback(invoke, assert_error) -> None:
    result = invoke(["label", "no_such_sample"])
    assert_error(result, "no_such_sample", "no such sample folder")
    verbose = invoke(["-v", "label", "no_such_sample"])
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr


def test_usage_errors_exit_2(invoke) -> None:
    assert invoke(["train", "--epochs", "many"]).exit_code == 2
    assert invoke(["no-such-command"]).exit_code == 2


_PROBE = """
import json, sys
from micmon_cli.app import app
try:
    app(sys.argv[1:], prog_name="micmon")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "tf": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}), file=sys.stderr)
"""


def _probe(args: list[str]) -> dict:
    env = {"MICMON_NO_LIVE": "1", "PATH": os.environ["PATH"], "HOME": str(Path.cwd())}
    if "PYTHONPATH" in os.environ:  # test this checkout, not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env, timeout=120
    )
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_help_version_predict_and_label_do_not_import_tensorflow(cli_model: Path, cli_audio: Path) -> None:
    sample = cli_audio / "sample_1"
    for args in (
        ["--help"],
        ["--version"],
        ["predict", "--model", str(cli_model), str(sample)],
        ["label", str(sample)],
    ):
        seen = _probe(args)
        assert seen["code"] in (0, None), (args, seen)
        assert not seen["tf"] and not seen["keras"], (args, seen)


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("columns", ["60", "100", "400"])
def test_help_renders_in_full(invoke, name: str, columns: str) -> None:
    """Help that renders: config keys shown with their defaults, no value placeholder on flags,
    choices listed, and a one-paragraph summary that wraps cleanly at any width."""
    from micmon_cli.options import bindings

    result = invoke([name, "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "<bool>" not in shown
    command = _registered()[name]
    command.describe()
    summary = command.help.split("\n\n")[0]
    assert "\n" not in summary  # unwrapped: Rich re-wraps it to the terminal
    if columns == "400":
        from rich.text import Text

        for param in command.params:
            text = " ".join(Text.from_markup(getattr(param, "help", None) or "").plain.split())
            assert text in shown, (param.name, text)
        for param_name, binding in bindings(command.callback).items():
            assert f"(config: {binding.key}" in shown, (param_name, binding.key)


def test_enumerated_options_list_and_check_their_choices(invoke) -> None:
    shown = " ".join(invoke(["train", "--help"], env={"COLUMNS": "400"}).stdout.split())
    assert "dense|cnn" in shown
    result = invoke(["train", "--model-type", "rnn"])
    assert result.exit_code == 2
    assert "'rnn' is not one of dense, cnn" in " ".join(result.output.split())


def test_no_short_flag_means_two_things() -> None:
    import typer.main

    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    global_shorts = {o for p in group.get_params(ctx) for o in p.opts if not o.startswith("--")}
    for name, command in _registered().items():
        for param in command.params:
            shorts = {o for o in getattr(param, "opts", []) if not o.startswith("--")}
            assert not (shorts & (global_shorts - {"-h"})), (name, param.name, shorts)


def test_usage_names_arguments_as_the_docs_do(invoke) -> None:
    for name, metavars in {
        "datagen": ["AUDIO_DIR", "DATASETS_DIR"],
        "train": ["DATASETS_DIR", "MODEL_DIR"],
        "evaluate": ["AUDIO_DIR"],
    }.items():
        usage = invoke([name, "--help"]).stdout
        for metavar in metavars:
            assert metavar in usage.split("\n\n")[0] or f"[{metavar}]" in usage, (name, metavar)


def test_monitor_options_are_grouped() -> None:
    from micmon_cli.commands.monitor import DETECTOR, INPUT, OUTPUT

    panels = {getattr(p, "rich_help_panel", None) for p in _registered()["monitor"].params}
    assert {INPUT, DETECTOR, OUTPUT} <= panels


def test_a_closed_pipe_is_not_an_error() -> None:
    """`micmon monitor --help | head -3`: the reader leaves early; micmon stops without a word."""
    micmon = str(Path(sys.executable).with_name("micmon"))
    proc = subprocess.run(
        ["sh", "-c", f"'{micmon}' monitor --help | head -3"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        timeout=60,
    )
    assert "Usage: micmon monitor" in proc.stdout
    assert "error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
