"""``run_injection``: inject, yield, and always undo: on normal exit, on an exception, on
SIGINT/SIGTERM/SIGHUP; and, through a guardian process, even when the owner is SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sreagent.lab.live._errors import LabRefused
from sreagent.lab.live._host import LabHost
from sreagent.lab.live._injector import Injector, Plan
from sreagent.lab.live._names import TAG_ENV, new_tag
from sreagent.lab.live._registry import make_injector
from sreagent.lab.live._sweep import OwnerLock, SweepReport, find_leftovers, sweep

_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Cleanup:
    """What undo did, and what a fresh look for the tag found afterwards."""

    removed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and not self.leftovers


@dataclass
class Injection:
    """A running live fault, as ``run_injection`` yields it."""

    injector: Injector
    plan: Plan
    injected_entity: str
    related_entities: list[str]
    started_monotonic: float
    deadline_monotonic: float
    stale_sweep: SweepReport | None
    cleanup: Cleanup | None = None
    """Filled in when the context exits."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.plan.tag

    def remaining_s(self) -> float:
        return max(0.0, self.deadline_monotonic - time.monotonic())

    def finished(self) -> bool:
        """Whether the fault ran its course (its workers all exited, e.g. the OOM kill came)."""
        return self.injector.finished()

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.1) -> bool:
        """Sleep until the deadline, the workers' end, or ``timeout_s``; True when the workers
        have all exited (they stop on their own shortly after the deadline)."""
        end = (
            self.deadline_monotonic
            if timeout_s is None
            else min(self.deadline_monotonic, time.monotonic() + timeout_s)
        )
        while time.monotonic() < end:
            if self.finished():
                return True
            time.sleep(poll_s)
        return self.finished()


def _raise_for(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP (and SIGINT) into exceptions so ``finally`` undoes the fault."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_for) for s in _CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while cleaning up; a second Ctrl-C cannot cut undo short.
    A held signal is delivered (to the restored handler) when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _CLEANUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _start_guardian(host: LabHost, tag: str, deadline_s: float) -> subprocess.Popen[bytes]:
    """A detached process that sweeps this tag if the owner dies without undoing."""
    # No TAG_ENV: the guardian is not part of the fault, and must survive the owner's sweeps.
    env = {k: v for k, v in os.environ.items() if k != TAG_ENV}
    cmd = [
        sys.executable,
        "-m",
        "sreagent.lab.live._guard",
        "--tag",
        tag,
        "--owner",
        str(os.getpid()),
        "--state",
        str(host.state),
        "--tmp",
        str(host.tmp),
        "--max-wait",
        str(deadline_s + 60),
    ]
    return subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextlib.contextmanager
def run_injection(
    name: str,
    duration_s: float,
    *,
    options: dict[str, Any] | None = None,
    on_ready: Callable[[Injection], None] | None = None,
    host: LabHost | None = None,
    tag: str | None = None,
    sweep_stale: bool = True,
    guardian: bool = True,
) -> Iterator[Injection]:
    """Inject the live fault ``name`` for at most ``duration_s``, yield it, always undo it.

    Order: take the run tag's owner lock; sweep leftovers of crashed runs (``sweep_stale``);
    build the plan and refuse (LabRefused, nothing created) on any conflict; start the
    guardian; inject; call ``on_ready``; yield. On exit, whatever the cause, signals are held
    while undo removes everything in reverse and a fresh search for the tag confirms nothing
    is left (anything found is swept); the outcome is in ``injection.cleanup``.
    """
    if os.geteuid() != 0:
        raise LabRefused(f"live injection {name!r} needs root; nothing was done")
    host = host or LabHost()
    tag = tag or new_tag()
    lock = OwnerLock(host, tag)
    guard: subprocess.Popen[bytes] | None = None
    injector: Injector | None = None
    injection: Injection | None = None
    started = False  # once inject() begins, anything named with the tag is ours
    with _signals_raise():
        lock.acquire({"pid": os.getpid(), "injector": name, "duration_s": duration_s})
        try:
            stale = sweep(host) if sweep_stale else None
            injector = make_injector(name, tag, duration_s, host=host, **(options or {}))
            plan = injector.plan()
            injector.preflight()
            if guardian:
                guard = _start_guardian(host, tag, duration_s)
            start = time.monotonic()
            started = True
            injector.inject()
            injection = Injection(
                injector=injector,
                plan=plan,
                injected_entity=injector.injected_entity,
                related_entities=injector.related_entities(),
                started_monotonic=start,
                deadline_monotonic=start + injector.duration_s,
                stale_sweep=stale,
            )
            if on_ready is not None:
                on_ready(injection)
            yield injection
        finally:
            with _signals_deferred():
                cleanup = Cleanup()
                if injector is not None and started:
                    undone = injector.undo()
                    _stop_guardian(guard)
                    left = [x for x in find_leftovers(host, tag=tag) if x.kind != "lockfile"]
                    if left:  # strays (a worker's child, a half-made link): remove them by name
                        lock.release()
                        sweep(host, tag=tag)
                        left = [x for x in find_leftovers(host, tag=tag) if x.kind != "lockfile"]
                    cleanup = Cleanup(undone.removed, undone.errors, tuple(x.label() for x in left))
                _stop_guardian(guard)
                if injection is not None:
                    injection.cleanup = cleanup
                lock.release()


def _stop_guardian(guard: subprocess.Popen[bytes] | None) -> None:
    if guard is not None and guard.poll() is None:
        guard.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            guard.wait(timeout=5)
