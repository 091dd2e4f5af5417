"""Run every baseline over every labelled dataset in ../shared/datasets and print the tables.

    .venv/bin/python bench/eval_baselines.py [DATASETS_DIR] [--json OUT_DIR]

Prints one Markdown table per dataset (figures, case counts, date and commit) for
docs/evaluation-method.md; with ``--json`` also writes ``<dataset>.json`` in the
``sreagent eval --json`` shape. Full runs take about a minute on 2 cores (SMD is 3.6 M rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sreagent.eval import evaluate_baselines, load_dataset

REPO = Path(__file__).resolve().parent.parent

RCA_COLUMNS = ("cases", "ac@1", "ac@3", "avg@5", "ac@1_entity", "ac@3_entity", "avg@5_entity")
DETECTION_COLUMNS = (
    "cases",
    "precision",
    "recall",
    "f1",
    "f1_point",
    "f1_point_adjusted",
    "delay_median_s",
    "nab_standard",
    "nab_low_fp",
    "nab_low_fn",
    "hitrate@100",
    "hitrate@150",
)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return "-" if value is None else str(value)


def _table(rows: list[tuple[str, dict[str, object]]], columns: tuple[str, ...]) -> str:
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, block in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(block.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", nargs="?", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--json", dest="json_dir", default=None)
    args = parser.parse_args()
    root = Path(args.datasets)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit}.\n")
    for directory in sorted(p for p in root.iterdir() if (p / "cases").is_dir()):
        task = load_dataset(directory).task
        started = time.perf_counter()
        out = evaluate_baselines(directory, task)
        elapsed = time.perf_counter() - started
        print(f"### {out['dataset']} ({task}, {out['cases']} cases, {elapsed:.1f} s)\n")
        baselines = out["baselines"]
        if task == "rca":
            print(_table(list(baselines.items()), RCA_COLUMNS) + "\n")
            subset = [
                (f"{n} (metric-observable)", b["subsets"]["metric_observable"])
                for n, b in baselines.items()
                if "subsets" in b
            ]
            print(_table(subset, RCA_COLUMNS) + "\n")
            per_type = [
                (f"{n}: {ft}", block)
                for n, b in baselines.items()
                for ft, block in b.get("by_fault_type", {}).items()
            ]
            print(_table(per_type, RCA_COLUMNS[:4]) + "\n")
        else:
            print(_table(list(baselines.items()), DETECTION_COLUMNS) + "\n")
        if args.json_dir:
            target = Path(args.json_dir)
            target.mkdir(parents=True, exist_ok=True)
            (target / f"{out['dataset']}.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
