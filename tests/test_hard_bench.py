"""The hard benchmark's own checks: its arguments and its threshold-free window figures."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from helpers import bench_module


@pytest.fixture(scope="module")
def hard_bench() -> ModuleType:
    return bench_module("hard_bench")


@pytest.mark.parametrize("script", ["hard_bench", "hard_replay"])
@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--tasks", "chime,nosuch", "nosuch"),
        ("--seeds", "0,x", "0,x"),
        ("--variants", "nosuch-reseed100", "nosuch-reseed100"),
    ],
)
def test_an_unknown_task_variant_or_a_bad_seed_stops_before_any_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    script: str,
    flag: str,
    value: str,
    named: str,
) -> None:
    if script == "hard_replay" and flag == "--variants":
        flag = "--variant"  # the replay takes one variant
    with pytest.raises(SystemExit) as stop:
        bench_module(script).main(["--corpus", str(tmp_path), "--out", str(tmp_path / "out"), flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in err and repr(named) in err
    assert not (tmp_path / "out").exists()  # nothing written


def _scored(scores: list[float], truth: list[str | None]) -> SimpleNamespace:
    s = np.array(scores)
    return SimpleNamespace(labels=("bell", "negative"), scores=np.stack([s, 1 - s], axis=1), truth=truth)


def test_window_ranking_rewards_order_not_the_one_half_cut(hard_bench: ModuleType) -> None:
    # every bell window scores above every other, though all below one half: a perfect ranking
    low = _scored([0.3, 0.2, 0.1, 0.05], ["bell", "bell", "negative", None])
    assert hard_bench.window_ranking([low], ["bell"]) == {
        "window_average_precision": 1.0,
        "window_best_f1": 1.0,
    }
    # one other window ranked between the two bell windows: precision 1 then 2/3
    mixed = _scored([0.9, 0.8, 0.7, 0.1], ["bell", "negative", "bell", "negative"])
    figures = hard_bench.window_ranking([mixed], ["bell"])
    assert figures["window_average_precision"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert figures["window_best_f1"] == pytest.approx(0.8, abs=1e-4)  # threshold 0.7: p 2/3, r 1
    # no window of the target at all: nothing to rank, zero
    none = _scored([0.9, 0.1], ["negative", "negative"])
    assert hard_bench.window_ranking([none], ["bell"])["window_average_precision"] == 0.0
