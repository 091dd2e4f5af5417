"""Live lab end to end: per scenario, detection time from injection to incident, and whether
the role chain named the injected fault and entity (``sreagent lab live``, run_live).

Each scenario runs through the real collector and controller (separate processes on
loopback), one after the other, as the end-to-end tests do. The table records the host's load
average before each run: the game day assumes a quiet host, and a busy one (other jobs
saturating the CPUs) changes the answer (docs/live-lab.md, "Known limits").

Writes the table to docs/evaluation.md under "## Live lab (bench/lab_live_e2e.py)" (replacing
that section only) and prints it. Root only:

    .venv/bin/python bench/lab_live_e2e.py [SCENARIO ...] [--baseline 30] [--no-write]
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
from sreagent.lab.live import run_live  # noqa: E402

HEADING = "Live lab (bench/lab_live_e2e.py)"
EVALUATION = REPO / "docs" / "evaluation.md"
DEFAULT = ["cpu-hog", "cgroup-throttle", "memory-oom", "net-loss", "io-saturation"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=DEFAULT)
    parser.add_argument("--baseline", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (live faults)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sreagent-bench-e2e-") as tmp:
        for scenario in args.scenarios:
            load = os.getloadavg()[0]
            start = time.monotonic()
            r = run_live(scenario, duration_s=args.duration, baseline_s=args.baseline,
                         out=Path(tmp), render_postmortem=False)
            wall = time.monotonic() - start
            detection = f"{r.detection_seconds:.1f}" if r.detection_seconds is not None else "-"
            rows.append(
                f"| `{scenario}` | {load:.1f} | {r.rule or 'none'} | {detection} | "
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
        "the incident (the alert rule that fired); wall: the whole run, controller start to "
        "cleanup and export.",
        "",
        "| scenario | load avg before | rule | detection s | top hypothesis | correct | "
        "executed | cleanup | replay | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if not args.no_write:
        write_section(HEADING, body, EVALUATION)


if __name__ == "__main__":
    main()
