"""``python -m sreagent.collector``: the node collector's own, light entry point.

The same command as ``sreagent collect`` (same options, subcommands and exit codes:
``python -m sreagent.collector --config /etc/sreagent/collector.toml``,
``python -m sreagent.collector capabilities --json``), without the rest of the ``sreagent``
command line. For any other command ``sreagent`` registers every command group before it
parses its arguments, and some of them import polars and pyarrow at import time; on a node,
where the agent runs for months next to the workloads, that would be some 80 MiB of resident
memory the collector never uses (docs/benchmarks.md, "Collector overhead"), so ``sreagent
collect`` registers its own command alone, as this module does. Deploy the daemon with this
entry point: it does not need the rest of the command line at all.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``sreagent collect`` with ``argv`` (default: the process arguments)."""
    # Importing the command module registers ``collect`` on the shared app, and nothing else.
    import sreagent.cli._collect  # noqa: F401
    from sreagent.cli import run_app

    args = ["collect", *(sys.argv[1:] if argv is None else argv)]
    return run_app(args, prog_name="python -m sreagent.collector")


def run() -> None:
    """Console-script entry point (``sreagent-collector``)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
