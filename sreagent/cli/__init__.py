"""The ``sreagent`` command line.

Each command group lives in its own module and registers itself on :data:`app`. Errors are
mapped to exit codes once, in :func:`main`: 0 ok, 1 the checked property does not hold
(:class:`~sreagent.errors.CheckFailed`), 2 bad input or a command that is not built yet.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from sreagent.errors import BadInput, CheckFailed, NotLanded, SreagentError

app = typer.Typer(
    name="sreagent",
    help="Incident lab for Linux, Kubernetes, GPU and AI hosts: collect, serve, replay, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, soft_wrap=True)  # never wrap: errors get grepped

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from sreagent.cli import (  # noqa: F401
        _app,
        _collect,
        _demo,
        _eval,
        _evidence,
        _import,
        _lab,
        _replay,
        _report,
        _serve,
        _version,
    )


def exit_code_for(error: SreagentError) -> int:
    """The documented exit code of an error (docs/cli.md)."""
    if isinstance(error, CheckFailed):
        return EXIT_CHECK_FAILED
    if isinstance(error, BadInput | NotLanded):
        return EXIT_BAD_INPUT
    return EXIT_CHECK_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sreagent`` script.

    Called as the process's entry point (no ``argv``), it ends the process itself once the
    command is done and its output flushed: Arrow's C++ thread pools can abort the interpreter's
    final teardown ("terminate called without an active exception", apache/arrow#34314), which
    turned a clean exit code into SIGABRT now and then on a loaded machine.
    """
    code = _main(argv)
    if argv is None:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["collect"]:
        # The node agent runs for months: register its command alone, without the command
        # groups that import polars and pyarrow (docs/collector.md).
        from sreagent.cli import _collect  # noqa: F401
    else:
        _register()
    return run_app(argv)


def run_app(args: list[str] | None, prog_name: str | None = None) -> int:
    """Run the registered commands on ``args``; errors mapped to exit codes once, here."""
    try:
        app(args=args, prog_name=prog_name, standalone_mode=False)
    except SreagentError as error:
        err_console.print(f"[bold red]error[/] ({error.code}): {error}", highlight=False)
        return exit_code_for(error)
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except Exception as error:
        # Usage errors (typer vendors click) arrive here in non-standalone mode.
        if callable(getattr(error, "show", None)) and isinstance(getattr(error, "exit_code", None), int):
            error.show()  # type: ignore[attr-defined]
            return EXIT_BAD_INPUT
        raise
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
