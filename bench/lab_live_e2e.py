"""Live lab end to end: per scenario, detection time from injection to incident, and whether
the role chain named the injected fault and entity (``sreagent lab live``, run_live).

Each scenario runs through the real collector and controller (separate processes on
loopback), one after the other, as the end-to-end tests do. The table records the host's load
average before each run: the game day assumes a quiet host, and a busy one (other jobs
saturating the CPUs) changes the answer (docs/live-lab.md, "Known limits").

Writes the table to docs/evaluation.md under "## Live lab (bench/lab_live_e2e.py)" (replacing
that section only) and prints it. With ``--findings``, every wrong answer is recorded for the
role-chain engineer (bench/lab_live_findings.py: the package copied to a lasting folder, the
top three hypotheses with scores and features). Root only:

    .venv/bin/python bench/lab_live_e2e.py [SCENARIO ...] [--baseline 30] [--no-write]
        [--keep DIR] [--findings]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._sections import write_section  # noqa: E402
from bench.lab_live_findings import record  # noqa: E402
from sreagent.lab.live import HostNotSteady, run_live  # noqa: E402

HEADING = "Live lab (bench/lab_live_e2e.py)"
EVALUATION = REPO / "docs" / "evaluation.md"
DEFAULT = ["cpu-hog", "cgroup-throttle", "memory-oom", "net-loss", "io-saturation"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=DEFAULT)
    parser.add_argument("--baseline", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep every run's work folder here")
    parser.add_argument("--findings", action="store_true",
                        help="record wrong answers in /work/prompts/s3/live_findings.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (live faults)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sreagent-bench-e2e-") as tmp:
        for scenario in args.scenarios:
            load = os.getloadavg()[0]
            start = time.monotonic()
            try:
                r = run_live(scenario, duration_s=args.duration, baseline_s=args.baseline,
                             out=args.keep or Path(tmp), render_postmortem=False)
            except HostNotSteady as err:  # the host was busy: say so in the table, go on
                rows.append(f"| `{scenario}` | {load:.1f} | not run: host not steady | - | - | "
                            f"- | - | - | - | - | {time.monotonic() - start:.0f} |")
                print(rows[-1], err.message, sep="\n", flush=True)
                continue
            wall = time.monotonic() - start
            print("  ranking:", "; ".join(r.ranking), flush=True)
            if args.findings and not r.correct and r.package:
                record(Path(r.package), scenario=scenario, expected=r.expected_hypothesis,
                       entity=r.injected_entity, load=load, rule=r.rule,
                       note=f"found by bench/lab_live_e2e.py; detection {r.detection_seconds} s")
            detection = f"{r.detection_seconds:.1f}" if r.detection_seconds is not None else "-"
            answer = f"{r.answer_seconds:.1f}" if r.answer_seconds is not None else "-"
            rows.append(
                f"| `{scenario}` | {load:.1f} | {r.rule or 'none'} | {detection} | {answer} | "
                f"{r.top_hypothesis or '-'} at {r.top_entity or '-'} | "
                f"{'yes' if r.correct else 'NO'} | {'yes' if r.executed else 'no'} | "
                f"{'ok' if r.cleanup_ok else 'LEFT'} | "
                f"{ {True: 'identical', False: 'DIVERGED', None: 'not replayable'}[r.replay_identical] } | "
                f"{wall:.0f} |"
            )
            print(rows[-1], flush=True)
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine "
        f"({os.cpu_count()} CPUs), baseline {args.baseline:.0f} s, collector interval 1 s, "
        "default posture. Detection: seconds from the fault running to the controller opening "
        "the incident (the alert rule that fired); answer: from the fault running to the "
        "incident's run done (the 90 s of issue 10); wall: the whole run, controller start, "
        "30 s baseline, steady-state check, cleanup, export and replay. Load: the 1-minute "
        "load average when the run started.",
        "",
        "| scenario | load avg before | rule | detection s | answer s | top hypothesis | "
        "correct | executed | cleanup | replay | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if not args.no_write:
        write_section(HEADING, body, EVALUATION)


if __name__ == "__main__":
    main()
