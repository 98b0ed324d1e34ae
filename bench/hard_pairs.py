"""Judge a candidate against the defaults on paired training draws of the hard benchmark (issue 8).

Each pair is two output folders of `hard_bench.py` holding one run each of the same task, split and
training draw: the defaults' and the candidate's. This script reads their results.json (and
level.json, from `hard_level.py --room`) and prints, per pair and as means over the pairs:
- as the CLI calibrates by default (`cli_remix_calibration`): event recall and false alarms an hour
  of the test room; the ceiling (`oracle_recall`); window average precision and macro F1;
- the level probe: events found and false alarms an hour at -12 / 0 / +12 dB, and their means;
- the worst pair's calibrated recall (the issue's targets are a worst of draws).
Then the two adoption rules of `docs/benchmarks-hard.md` on the means: the seventeenth round's (the
recorded level) and the twenty-sixth round's level rule (recall and false alarms averaged over the
three levels). A verdict is printed only when both arms have `--need` pairs.

Runs measured from the twenty-eighth round on keep their results.json and level.json in the
repository under bench/results/<run>/, so pairs from other sessions (and machines) can be named too.

Example: python bench/hard_pairs.py --task chime bench/out/s22_d10a:bench/out/s25_c10r \\
             bench/out/s22_d7a:bench/out/s26_c7r
         python bench/hard_pairs.py --task creatures bench/results/s29_s10db:bench/results/s29_s10qb
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hard_level import level_key  # noqa: E402

#: The level probe's levels the level rule averages over (their keys in level.json).
LEVELS = tuple(level_key(gain) for gain in (-12.0, 0.0, 12.0))
#: The adoption rules' allowances: recall and ceiling may lose, macro F1 may lose, false alarms
#: an hour may rise by at most this much (mean over pairs).
RECALL_LOSS, CEILING_LOSS, F1_LOSS, FALSE_ALARM_RISE = 0.03, 0.03, 0.01, 0.5


@dataclass(frozen=True)
class Arm:
    """One network's figures."""

    name: str
    recall: float
    false_alarms: float
    ceiling: float
    average_precision: float
    macro_f1: float
    levels: dict[str, tuple[int, int, float]] | None  # level -> (found, events, FA/h)

    @property
    def level_recall(self) -> float | None:
        """Calibrated recall averaged over LEVELS, or None without a level probe."""
        if self.levels is None:
            return None
        return sum(f / e for f, e, _ in self.levels.values()) / len(self.levels)

    @property
    def level_false_alarms(self) -> float | None:
        """Test-room false alarms an hour averaged over LEVELS, or None without a level probe."""
        if self.levels is None:
            return None
        return sum(fa for _, _, fa in self.levels.values()) / len(self.levels)


def load(folder: Path, task: str) -> Arm:
    """Read the one run of `task` in `folder`; exit with a one-line error if it is not there."""
    results = folder / "results.json"
    if not results.is_file():
        sys.exit(f"error: {results}: no such file (run hard_bench.py --out {folder} first)")
    runs = {k: v for k, v in json.loads(results.read_text()).items() if k.split("/")[1] == task}
    if len(runs) != 1:
        sys.exit(f"error: {results}: expected one run of task {task!r}, found {len(runs)}")
    key, run = next(iter(runs.items()))
    cli = run["cli_remix_calibration"]
    levels = None
    probe = folder / "level.json"
    if probe.is_file():
        measured = json.loads(probe.read_text()).get(key, {})
        if all(level in measured and "found" in measured[level] for level in LEVELS):
            levels = {
                level: (
                    int(measured[level]["found"]),
                    int(measured[level]["events"]),
                    float(measured[level]["false_alarms_per_hour_room"]),
                )
                for level in LEVELS
            }
    return Arm(
        folder.name,
        float(cli["event_recall"]),
        float(cli["false_alarms_per_hour_room"]),
        float(run["oracle_recall"]),
        float(run["window_average_precision"]),
        float(run["window_macro_f1"]),
        levels,
    )


def mean(values: list[float]) -> float:
    """The arithmetic mean."""
    return sum(values) / len(values)


def levels_text(arm: Arm) -> str:
    """Found at each level and the false alarms an hour at the loudest, or a dash."""
    if arm.levels is None:
        return "-"
    found = " / ".join(str(f) for f, _, _ in arm.levels.values())
    return f"{found}; {arm.levels[LEVELS[-1]][2]:g} FA/h"


def verdict(name: str, checks: list[tuple[str, float, float]]) -> str:
    """One rule's line: each (what, change, allowance) and whether all are kept."""
    kept = [change <= allowed + 1e-9 for _, change, allowed in checks]
    parts = [
        f"{what} {change:+.3f} ({'kept' if ok else 'BROKEN'}, allowed {allowed:+.2f})"
        for (what, change, allowed), ok in zip(checks, kept, strict=True)
    ]
    return f"{name}: {'passes' if all(kept) else 'fails'}: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Print the pairs' table, the means and both rules' verdicts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="DEFAULTS_OUT:CANDIDATE_OUT, one per pair")
    p.add_argument("--task", required=True, help="the task both folders ran (chime, creatures, ...)")
    p.add_argument("--need", type=int, default=6, help="pairs the rules need for a verdict (default 6)")
    args = p.parse_args(argv)
    pairs: list[tuple[Arm, Arm]] = []
    for pair in args.pairs:
        if pair.count(":") != 1:
            sys.exit(f"error: pair {pair!r}: expected DEFAULTS_OUT:CANDIDATE_OUT")
        a, b = pair.split(":")
        pairs.append((load(Path(a), args.task), load(Path(b), args.task)))

    print(
        "| pair | defaults | candidate | ceiling | AP | window macro F1 | levels: found at -12 / 0 / +12 dB |"
    )
    print("|---|---|---|---|---|---|---|")
    for d, c in pairs:
        print(
            f"| {d.name} : {c.name} | {d.recall:.2f} / {d.false_alarms:g} "
            f"| {c.recall:.2f} / {c.false_alarms:g} "
            f"| {d.ceiling:.2f} -> {c.ceiling:.2f} | {d.average_precision:.3f} -> {c.average_precision:.3f} "
            f"| {d.macro_f1:.3f} -> {c.macro_f1:.3f} | {levels_text(d)} -> {levels_text(c)} |"
        )
    means: dict[str, tuple[float, float]] = {}
    for what, get in (
        ("recall", lambda a: a.recall),
        ("false alarms an hour", lambda a: a.false_alarms),
        ("ceiling", lambda a: a.ceiling),
        ("window AP", lambda a: a.average_precision),
        ("window macro F1", lambda a: a.macro_f1),
    ):
        means[what] = (mean([get(d) for d, _ in pairs]), mean([get(c) for _, c in pairs]))
    probed = all(d.levels is not None and c.levels is not None for d, c in pairs)
    if probed:
        means["recall over three levels"] = (
            mean([d.level_recall or 0.0 for d, _ in pairs]),
            mean([c.level_recall or 0.0 for _, c in pairs]),
        )
        means["false alarms over three levels"] = (
            mean([d.level_false_alarms or 0.0 for d, _ in pairs]),
            mean([c.level_false_alarms or 0.0 for _, c in pairs]),
        )
    print(f"\nmeans over {len(pairs)} pairs (defaults -> candidate):")
    for what, (d, c) in means.items():
        print(f"  {what}: {d:.3f} -> {c:.3f} ({c - d:+.3f})")
    worst = min(d.recall for d, _ in pairs), min(c.recall for _, c in pairs)
    print(f"  worst pair's calibrated recall (not in the rules): {worst[0]:.3f} -> {worst[1]:.3f}")

    def loss(what: str) -> float:
        return means[what][0] - means[what][1]

    def rise(what: str) -> float:
        return means[what][1] - means[what][0]

    shared = [
        ("ceiling loss", loss("ceiling"), CEILING_LOSS),
        ("macro F1 loss", loss("window macro F1"), F1_LOSS),
    ]
    rules = [
        verdict(
            "recorded-level rule",
            [
                ("recall loss", loss("recall"), RECALL_LOSS),
                ("false-alarm rise", rise("false alarms an hour"), FALSE_ALARM_RISE),
                *shared,
            ],
        )
    ]
    if probed:
        rules.append(
            verdict(
                "level rule",
                [
                    ("recall loss", loss("recall over three levels"), RECALL_LOSS),
                    ("false-alarm rise", rise("false alarms over three levels"), FALSE_ALARM_RISE),
                    *shared,
                ],
            )
        )
    else:
        rules.append("level rule: not every network has a level probe (hard_level.py --room)")
    if len(pairs) < args.need:
        print(f"\n{len(pairs)} of {args.need} pairs: no verdict; the rules as they stand:")
    else:
        print()
    for line in rules:
        print(f"  {line}")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly, as any Unix tool
    main()
