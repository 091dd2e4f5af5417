"""A runtime guard that makes a role's hidden effects fail loudly.

The static check (tests/roles/test_determinism.py) keeps clock, randomness and I/O imports out
of ``sreagent/roles/``; this guard catches what slips past it at run time: while a role runs
inside :func:`forbid_effects`, reading the wall clock through :mod:`time`, global randomness
(:mod:`random`, ``numpy.random``), ``os.urandom``, ``uuid4``, opening a file, starting a
process or opening a socket raises :class:`EffectForbidden`. ``datetime.now()`` reads the
clock in C, below anything patchable without replacing the ``datetime`` class for the whole
process (which breaks C extensions), so it is left to the static check. Activities lift the guard (:func:`allow_effects`) because effects are
exactly what they are for, and they are recorded.

The patches are installed once per process and pass straight through unless the *current*
context (a :mod:`contextvars` flag, so other threads are unaffected) forbids effects.
"""

from __future__ import annotations

import contextvars
import os
import random  # noqa: TID251  (patched, not used: the guard forbids it)
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from sreagent.errors import SreagentError


class EffectForbidden(SreagentError):
    """A role touched the clock, global randomness or I/O (it must use its context)."""

    code = "effect_forbidden"


_FORBIDDEN: contextvars.ContextVar[bool] = contextvars.ContextVar("sreagent_effects_forbidden",
                                                                  default=False)
_installed = False
_install_lock = threading.Lock()
_AUDITED = ("open", "subprocess.Popen", "socket.connect", "socket.bind", "socket.getaddrinfo",
            "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.listdir", "os.scandir",
            "os.remove", "os.rename", "os.mkdir", "shutil.rmtree", "urllib.Request")
_IMPORT_SUFFIXES = (".py", ".pyc", ".so", ".pth", ".pyi")


def _raise(what: str) -> None:
    raise EffectForbidden(f"a role called {what}; roles take time, randomness and ids from "
                          "their RoleContext and do effects only through ctx.activity()")


def _wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _FORBIDDEN.get():
            _raise(name)
        return original(*args, **kwargs)

    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _FORBIDDEN.get() or event not in _AUDITED:
        return
    if event == "open" and args:
        path = str(args[0])
        mode = str(args[1]) if len(args) > 1 and args[1] is not None else "r"
        # Lazy imports inside libraries read source and extension files; that is not a role
        # doing I/O, and it is not a hidden input either.
        if ("w" not in mode and "a" not in mode and "+" not in mode
                and (path.endswith(_IMPORT_SUFFIXES) or path.startswith(sys.prefix))):
            return
    _raise(f"{event}{args[:1]!r}")


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        for name in ("time", "time_ns", "monotonic", "monotonic_ns", "localtime", "ctime"):
            setattr(time, name, _wrap(f"time.{name}()", getattr(time, name)))
        for name in ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample",
                     "uniform", "gauss", "getrandbits", "seed"):
            setattr(random, name, _wrap(f"random.{name}()", getattr(random, name)))
        for name in ("uuid1", "uuid4"):
            setattr(uuid, name, _wrap(f"uuid.{name}()", getattr(uuid, name)))
        os.urandom = _wrap("os.urandom()", os.urandom)
        for name in ("random", "rand", "randn", "randint", "choice", "shuffle", "permutation",
                     "normal", "uniform", "seed"):
            setattr(np.random, name, _wrap(f"numpy.random.{name}()", getattr(np.random, name)))
        original_rng = np.random.default_rng

        def default_rng(seed: Any = None) -> np.random.Generator:
            if seed is None and _FORBIDDEN.get():
                _raise("numpy.random.default_rng() without a seed")
            return original_rng(seed)

        np.random.default_rng = default_rng
        sys.addaudithook(_audit)
        _installed = True


@contextmanager
def forbid_effects() -> Iterator[None]:
    """Run the body with clock, randomness and I/O forbidden in this context."""
    _install()
    token = _FORBIDDEN.set(True)
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)


@contextmanager
def allow_effects() -> Iterator[None]:
    """Lift the guard for an activity (its effects are recorded)."""
    token = _FORBIDDEN.set(False)
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)
