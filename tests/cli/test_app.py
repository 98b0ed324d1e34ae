"""The app as a whole: global options, help with examples, the error boundary, lazy TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from micmon_cli.app import app

COMMANDS = ["demo", "record", "label", "datagen", "train", "predict", "config"]


def test_version(invoke) -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("micmon ")


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
    env = {"MICMON_NO_LIVE": "1", "PATH": __import__("os").environ["PATH"],
           "HOME": str(Path.cwd())}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                          env=env, timeout=120)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_help_predict_and_label_do_not_import_tensorflow(cli_model: Path, cli_audio: Path
                                                         ) -> None:
    sample = cli_audio / "sample_1"
    for args in (["--help"], ["predict", "--model", str(cli_model), str(sample)],
                 ["label", str(sample)]):
        seen = _probe(args)
        assert seen["code"] in (0, None), (args, seen)
        assert not seen["tf"] and not seen["keras"], (args, seen)


@pytest.mark.parametrize("name", COMMANDS)
def test_option_help_survives_rich_markup(invoke, name: str) -> None:
    """'[config: x]' would be eaten as a Rich markup tag; every help text must show in full."""
    import typer.main

    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    shown = " ".join(invoke([name, "--help"], env={"COLUMNS": "200"}).stdout.split())
    for param in command.params:
        text = " ".join((getattr(param, "help", None) or "").split())
        assert text in shown, (param.name, text)
