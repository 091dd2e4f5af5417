"""Record a live-lab run whose answer was wrong as a finding for the role-chain engineer.

Copies the run's evidence package to a folder that outlives the run and appends a block to
the findings file: the scenario, the load average, the package's new path, what was expected
and the chain's top three hypotheses with their scores and features (read from the package's
``root_cause_hypothesis`` artifact, not from the lab's summary). Usable on its own for a
package a test left behind:

    .venv/bin/python bench/lab_live_findings.py PACKAGE --scenario cpu-hog \
        --expected cpu_saturation --entity process/123 --load 4.2 [--findings F] [--into D]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

FINDINGS = Path("/work/prompts/s3/live_findings.md")
PACKAGES = Path("/work/prompts/s3/packages")


def top_hypotheses(package: Path, n: int = 3) -> list[dict[str, Any]]:
    """The first ``n`` hypotheses of the package's last root_cause_hypothesis artifact."""
    table = pq.read_table(package / "artifacts.parquet", columns=["kind", "payload"])
    payloads = [json.loads(p) for k, p in zip(table["kind"].to_pylist(),
                                              table["payload"].to_pylist(), strict=True)
                if k == "root_cause_hypothesis"]
    return list(payloads[-1].get("hypotheses", []))[:n] if payloads else []


def record(package: Path, *, scenario: str, expected: str, entity: str, load: float,
           rule: str | None, findings: Path = FINDINGS, into: Path = PACKAGES,
           note: str = "") -> Path:
    """Copy ``package`` under ``into`` and append its finding to ``findings``; the copy's path."""
    into.mkdir(parents=True, exist_ok=True)
    kept = into / f"{scenario}-{package.name}"
    if not kept.exists():
        shutil.copytree(package, kept)
    lines = [
        f"### {scenario}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {load:.1f}",
        "",
        f"- package: `{kept}`",
        f"- incident opened by rule: `{rule or '-'}`",
        f"- expected: `{expected}` at `{entity}`",
    ]
    if note:
        lines.append(f"- {note}")
    for h in top_hypotheses(package):
        features = ", ".join(f"{k}={v:.3g}" for k, v in sorted(h.get("features", {}).items()))
        lines.append(f"- #{h['rank']} `{h['fault_class']}` at `{h['entity']}`: score "
                     f"{h['score']:.3g}, confidence {h['confidence']:.3f}; features: "
                     f"{features or '-'}")
    with findings.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n\n")
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--entity", required=True)
    parser.add_argument("--load", type=float, required=True)
    parser.add_argument("--rule")
    parser.add_argument("--note", default="")
    parser.add_argument("--findings", type=Path, default=FINDINGS)
    parser.add_argument("--into", type=Path, default=PACKAGES)
    args = parser.parse_args()
    kept = record(args.package, scenario=args.scenario, expected=args.expected,
                  entity=args.entity, load=args.load, rule=args.rule, findings=args.findings,
                  into=args.into, note=args.note)
    print(kept)


if __name__ == "__main__":
    main()
