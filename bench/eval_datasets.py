"""`sreagent eval` on every labelled dataset: the chain beside the baselines, tables for the docs.

    .venv/bin/python bench/eval_datasets.py [DATASETS_DIR] [--out DIR] [--only NAME ...]

Runs :func:`sreagent.eval.chain.evaluate` (what ``sreagent eval DIR --task T --json OUT``
runs) on nezha (rca), nab, smd and asd (detection), writes ``<dataset>.json`` under ``--out``
(default ``/tmp/sreagent-eval``) and prints the Markdown tables of the public-datasets section
of docs/evaluation.md, with case counts, wall time, date and commit. The whole run takes
about a quarter of an hour on 2 cores (SMD's culprit segments are 67 chain runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sreagent.eval.chain import evaluate

REPO = Path(__file__).resolve().parent.parent
DATASETS = {"nezha": "rca", "nab": "detection", "smd": "detection", "asd": "detection"}
NAMES = {"chain": "sreagent chain", "baro": "BARO (re-impl.), labelled alarm time",
         "nsigma": "N-sigma", "baro_e2e": "BARO end to end (own BOCPD alarm time)",
         "windowed_gaussian": "NAB windowed Gaussian"}


def _f(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def rca_tables(report: dict[str, Any]) -> list[str]:
    rows = {"chain": report, **report["baselines"]}
    out = ["| method | cases | AC@1 | AC@3 | Avg@5 | observable cases | observable AC@1 | "
           "observable AC@3 | observable Avg@5 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        m = r["metrics"] if name == "chain" else r
        obs = r["subsets"]["metric_observable"]
        out.append(f"| {NAMES[name]} | {m['cases']} | {_f(m['ac@1'])} | {_f(m['ac@3'])} | "
                   f"{_f(m['avg@5'])} | {obs['cases']} | {_f(obs['ac@1'])} | "
                   f"{_f(obs['ac@3'])} | {_f(obs['avg@5'])} |")
    out += ["", "| fault type | cases | " + " | ".join(
        f"{NAMES[n]} AC@1 / AC@3" for n in rows) + " |",
        "|---|---|" + "---|" * len(rows)]
    for fault in sorted(report["by_fault_type"]):
        cells = []
        for r in rows.values():
            block = r["by_fault_type"][fault]
            cells.append(f"{_f(block['ac@1'])} / {_f(block['ac@3'])}")
        out.append(f"| {fault} | {report['by_fault_type'][fault]['cases']} | "
                   + " | ".join(cells) + " |")
    return out


def detection_table(report: dict[str, Any]) -> list[str]:
    rows = {"chain": report["metrics"], **report["baselines"]}
    names = {**NAMES, "baro": "BARO (re-impl.)"}  # detection has no alarm time to hand over
    culprits = "hitrate@100" in report["metrics"]
    head = ("| method | P | R | F1 (event) | F1 point, no PA | F1 point, PA | median delay | "
            "NAB standard | NAB low FP | NAB low FN |")
    out = [head + (" HitRate@100 | HitRate@150 |" if culprits else ""),
           "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if culprits else "")]
    for name, m in rows.items():
        delay = m.get("delay_median_s")
        line = (f"| {names[name]} | {_f(m['precision'])} | {_f(m['recall'])} | {_f(m['f1'])} | "
                f"{_f(m['f1_point'])} | {_f(m['f1_point_adjusted'])} | "
                f"{'-' if delay is None else f'{delay:.0f} s'} | {m['nab_standard']:.1f} | "
                f"{m['nab_low_fp']:.1f} | {m['nab_low_fn']:.1f} |")
        if culprits:
            line += f" {_f(m['hitrate@100'])} | {_f(m['hitrate@150'])} |"
        out.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="?", type=Path,
                        default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sreagent-eval"))
    parser.add_argument("--only", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on commit {commit}, 2 cores.\n")
    for name in args.only:
        task = DATASETS[name]
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"eval-{name}-") as work:
            report = evaluate(args.datasets / name, task,  # type: ignore[arg-type]
                              work=Path(work),
                              progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
        took = time.monotonic() - started
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2, sort_keys=True))
        extra = ""
        if task == "detection":
            extra = f", {report['metrics']['windows']} windows"
            if "culprit_segments" in report["metrics"]:
                extra += f", {report['metrics']['culprit_segments']} culprit segments"
        print(f"### {name} ({task}, {report['cases']} cases{extra}; {took:.0f} s)\n")
        lines = rca_tables(report) if task == "rca" else detection_table(report)
        print("\n".join(lines) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
