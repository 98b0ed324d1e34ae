"""Config: lookup order, flags over file, sources, one-line errors, the example file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from micmon_cli.config import Config, Flag, load_config, render_example, render_reference

REPO = Path(__file__).resolve().parents[2]


def _settings(invoke, *args: str) -> dict:
    result = invoke([*args, "config", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_defaults_without_any_file(invoke) -> None:
    data = _settings(invoke)
    assert data["file"] is None
    assert data["settings"]["features.bins"] == {"value": 100, "source": "default"}
    assert data["settings"]["paths.audio_dir"]["value"] == str(Path.home() / "datasets/sound-detect/audio")


def test_lookup_order(invoke, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home_cfg = Path.home() / ".config" / "micmon" / "micmon.yaml"
    home_cfg.parent.mkdir(parents=True)
    home_cfg.write_text("features:\n  bins: 10\n")
    assert _settings(invoke)["settings"]["features.bins"]["value"] == 10

    (isolated / "micmon.yaml").write_text("features:\n  bins: 20\n")
    assert _settings(invoke)["settings"]["features.bins"]["value"] == 20

    env_cfg = isolated / "env.yaml"
    env_cfg.write_text("features:\n  bins: 30\n")
    monkeypatch.setenv("MICMON_CONFIG", str(env_cfg))
    data = _settings(invoke)
    assert data["settings"]["features.bins"] == {"value": 30, "source": str(env_cfg)}

    flag_cfg = isolated / "flag.yaml"
    flag_cfg.write_text("features:\n  bins: 40\n")
    assert _settings(invoke, "--config", str(flag_cfg))["settings"]["features.bins"]["value"] == 40


def test_flags_override_the_file_and_sources_say_so(isolated: Path) -> None:
    cfg = isolated / "micmon.yaml"
    cfg.write_text("features:\n  low_freq: 250\n  high_freq: 7500\n")
    resolved = load_config(
        cfg, [Flag("features.low_freq", 300.0, "--low"), Flag("features.bins", None, "--bins")]
    )
    assert resolved.config.features.low_freq == 300
    assert resolved.config.features.high_freq == 7500
    assert resolved.source("features.low_freq") == "flag --low"
    assert resolved.source("features.high_freq") == str(cfg)
    assert resolved.source("features.bins") == "default"


def test_config_table_shows_value_and_source(invoke, isolated: Path) -> None:
    (isolated / "micmon.yaml").write_text("audio:\n  device: plughw:1,0\n")
    result = invoke(["config"])
    assert result.exit_code == 0
    assert f"config file: {isolated / 'micmon.yaml'}" in " ".join(result.stderr.split())
    line = next(ln for ln in result.stdout.splitlines() if "audio.device" in ln)
    assert "plughw:1,0" in line and "file" in line
    line = next(ln for ln in result.stdout.splitlines() if "audio.system" in ln)
    assert "alsa" in line and "default" in line


def test_paths_expand_home_and_vars_and_are_relative_to_the_file(isolated: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUNDS", "/srv/sounds")
    cfg = isolated / "sub" / "micmon.yaml"
    cfg.parent.mkdir()
    cfg.write_text("paths:\n  audio_dir: ~/rec\n  datasets_dir: $SOUNDS/data\n  model_dir: m\n")
    paths = load_config(cfg).config.paths
    assert paths.audio_dir == Path.home() / "rec"
    assert paths.datasets_dir == Path("/srv/sounds/data")
    assert paths.model_dir == cfg.parent / "m"


def test_default_high_freq_follows_a_low_sample_rate(isolated: Path) -> None:
    cfg = isolated / "micmon.yaml"
    cfg.write_text("audio:\n  sample_rate: 16000\n")
    assert load_config(cfg).config.features.high_freq == 8000


def test_the_example_file_copied_as_the_readme_says_loads(isolated: Path) -> None:
    # README: cp micmon.yaml.example micmon.yaml; its empty high_freq follows the 16 kHz default
    cfg = isolated / "micmon.yaml"
    cfg.write_text((REPO / "micmon.yaml.example").read_text())
    resolved = load_config(cfg)
    assert resolved.config.features.high_freq == 8000
    # the empty key is the default: derived from the rate, not read from the file
    assert resolved.source("features.high_freq") == "default"
    assert resolved.source("audio.sample_rate") == str(cfg)
    cfg.write_text(
        (REPO / "micmon.yaml.example").read_text().replace("sample_rate: 16000", "sample_rate: 48000")
    )
    assert load_config(cfg).config.features.high_freq == 20000


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("features:\n  lowfreq: 250\n", ["features.lowfreq", "unknown key", "did you mean 'low_freq'"]),
        ("low_freq: 250\n", ["low_freq", "unknown key", "did you mean 'features.low_freq'"]),
        ("audio:\n  sample_rate: fast\n", ["audio.sample_rate", "integer", "'fast'"]),
        ("features:\n  low_freq: 8000\n  high_freq: 7000\n", ["features.low_freq", "must be below"]),
        ("features:\n  high_freq: 30000\n", ["features.high_freq", "Nyquist", "8000"]),
        ("features:\n  scale: db\n", ["features.scale", "'log' or 'linear'", "'db'"]),
        ("training:\n  validation_split: 1.5\n", ["training.validation_split", "less than 1"]),
        ("paths: [a, b]\n", ["paths", "key: value"]),
        ("audio:\n  device: [unclosed\n", ["line 3", "invalid YAML"]),
    ],
)
def test_bad_config_is_one_line_naming_file_key_and_problem(
    invoke, assert_error, isolated: Path, text: str, fragments: list[str]
) -> None:
    cfg = isolated / "bad.yaml"
    cfg.write_text(text)
    line = assert_error(invoke(["--config", str(cfg), "config"]), str(cfg), *fragments)
    assert "\n" not in line


def test_bad_flag_value_names_the_flag(invoke, assert_error) -> None:
    assert_error(invoke(["datagen", "--low", "9000", "--high", "8000", "."]), "--low", "must be below")


def test_missing_config_file(invoke, assert_error, monkeypatch) -> None:
    assert_error(invoke(["--config", "nope.yaml", "config"]), "--config", "nope.yaml", "does not exist")
    monkeypatch.setenv("MICMON_CONFIG", "/no/such/micmon.yaml")
    assert_error(invoke(["config"]), "$MICMON_CONFIG", "/no/such/micmon.yaml")


def test_missing_path_names_the_config_key(invoke, assert_error, isolated: Path) -> None:
    cfg = isolated / "micmon.yaml"
    cfg.write_text("paths:\n  audio_dir: /no/such/audio\n")
    assert_error(invoke(["datagen"]), str(cfg), "paths.audio_dir", "/no/such/audio", "does not exist")


def test_example_file_documents_every_key_with_its_default() -> None:
    example = (REPO / "micmon.yaml.example").read_text()
    assert example == render_example(), "regenerate it: micmon config --init micmon.yaml.example --force"
    import yaml

    data = yaml.safe_load(example)
    for section, model in Config.model_fields.items():
        assert set(data[section]) == set(model.annotation.model_fields), section  # type: ignore[union-attr]
    # The example, loaded as a config, gives the defaults.
    assert Config.model_validate(data).model_dump() == Config().model_dump()


def test_config_init_writes_the_example_and_refuses_to_overwrite(
    invoke, assert_error, isolated: Path
) -> None:
    assert invoke(["config", "--init", "micmon.yaml"]).exit_code == 0
    assert (isolated / "micmon.yaml").read_text() == render_example()
    assert_error(invoke(["config", "--init", "micmon.yaml"]), "already exists", "--force")
    assert invoke(["config", "--init", "micmon.yaml", "--force"]).exit_code == 0


def test_docs_key_tables_are_generated_from_the_schema() -> None:
    path = REPO / "docs" / "config.md"
    docs = path.read_text()
    begin = docs.index("-->\n", docs.index("<!-- generated from the schema")) + len("-->\n")
    end = docs.index("<!-- end of generated tables -->")
    expected = render_reference()
    if os.environ.get("MICMON_REGEN_DOCS") == "1":
        docs = docs[:begin] + expected + docs[end:]
        path.write_text(docs)
        end = begin + len(expected)
    regenerate = "regenerate: MICMON_REGEN_DOCS=1 pytest tests/cli/test_config.py"
    assert docs[begin:end] == expected, regenerate
    for section, info in Config.model_fields.items():
        assert f"### `{section}:`" in docs, section
        for key in info.annotation.model_fields:  # type: ignore[union-attr]
            assert f"| `{key}` |" in docs, f"docs/config.md lacks {section}.{key}"


def test_every_training_option_is_a_config_key_with_the_library_default() -> None:
    from dataclasses import fields

    from micmon.training import TrainingOptions, training_options

    section = Config().training
    assert {f.name for f in fields(TrainingOptions)} == set(type(section).model_fields)
    # the section, as `micmon train` passes it, gives the library's defaults
    assert training_options(section.model_dump()) == TrainingOptions()


def test_the_hard_benchmarks_default_variant_is_what_micmon_train_does_with_no_flags() -> None:
    from dataclasses import fields, replace

    from helpers import bench_module
    from micmon.training import TrainingOptions

    hard_bench = bench_module("hard_bench")
    variant = hard_bench.options(hard_bench.DEFAULT_VARIANT)
    known = {f.name for f in fields(TrainingOptions)}
    benched = TrainingOptions(**{k: v for k, v in variant.items() if k in known})
    # what the bench sets as a user of the documented workflow would: `--holdout-recordings 2`,
    # and the network type the CLI picks for log-mel features
    assert replace(benched, holdout_recordings=0, model_type=None) == TrainingOptions()
    config = Config()
    assert config.training.holdout_recordings == 0 and benched.model_type == "cnn"
    cli_spec = config.feature_spec()
    assert hard_bench.feature_spec(variant) == replace(cli_spec, hop_seconds=None)
    assert variant["datagen_hop"] == cli_spec.hop_seconds and variant["background_hop"] is None


@pytest.mark.parametrize(
    ("key", "library"),
    [
        ("features.feature", "micmon.features:FEATURE_TYPES"),
        ("features.scale", "micmon.features:SCALES"),
        ("training.pooling", "micmon.model.networks:POOLINGS"),
        ("training.frontend", "micmon.model.networks:FRONTENDS"),
        ("training.model_type", "micmon.model.networks:MODEL_TYPES"),
        ("training.class_weight", "micmon.training:CLASS_WEIGHTS"),
        ("audio.format", "micmon.audio.recorder:RECORD_FORMATS"),
    ],
)
def test_config_choices_are_the_librarys(key: str, library: str) -> None:
    """A key's allowed values are the library's own list, so adding one there reaches the config."""
    import importlib

    from micmon_cli.config import key_info

    module, name = library.split(":")
    choices = getattr(importlib.import_module(module), name)
    assert choices
    assert key_info(key).choices == tuple(choices)


def test_every_record_format_has_codec_arguments_and_clip_formats_match_the_config() -> None:
    """`record` can write each format the config allows; a clip action's formats are the library's."""
    from typing import get_args

    from micmon.actions import CLIP_FORMATS
    from micmon.audio.recorder import CODECS, RECORD_FORMATS
    from micmon_cli.config import ClipActionConfig

    assert set(CODECS) == set(RECORD_FORMATS)
    assert get_args(ClipActionConfig.model_fields["format"].annotation) == CLIP_FORMATS
