"""A runtime guard that makes a role's hidden effects fail loudly.

The static check (tests/roles/test_determinism.py) keeps clock, randomness and I/O imports out
of ``sreagent/roles/``; this guard catches what slips past it at run time: while a role runs
inside :func:`forbid_effects`, reading the wall clock through :mod:`time`, global randomness
(:mod:`random`, ``numpy.random``), ``os.urandom``, ``uuid4``, opening a file, starting a
process or opening a socket raises :class:`EffectForbidden`.

``datetime.now()``, ``datetime.utcnow()``, ``datetime.today()`` and ``date.today()`` read the
clock in C. Replacing the ``datetime`` class for the whole process would break pickling and
``type(x) is datetime`` checks everywhere (and in other threads), so the guard rebinds the
names only *in the role modules* (``GUARDED_MODULES``, at every :func:`forbid_effects`):
``datetime``/``date`` bound by ``from datetime import ...`` become guarded look-alikes, and a
``datetime`` module bound by ``import datetime`` becomes a copy holding them. The look-alikes
build ordinary ``datetime``/``date`` objects and pass ``isinstance`` checks both ways; only
their clock reads raise while effects are forbidden. An ``import datetime`` inside a function
body escapes this; the static check (no ``from datetime import``, no ``.now``/``.today``)
covers it. Activities lift the guard (:func:`allow_effects`) because effects are exactly what
they are for, and they are recorded.

The patches are installed once per process and pass straight through unless the *current*
context (a :mod:`contextvars` flag, so other threads are unaffected) forbids effects.
"""

from __future__ import annotations

import contextvars
import datetime as _datetime
import os
import random  # noqa: TID251  (patched, not used: the guard forbids it)
import sys
import threading
import time
import types
import uuid
import weakref
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
_LISTINGS = ("os.listdir", "os.scandir")
GUARDED_MODULES = ("sreagent.roles",)
"""Module name prefixes whose ``datetime``/``date`` names the guard rebinds."""


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


class _PassThrough(type):
    """Metaclass of the look-alikes: ``isinstance``/``issubclass`` answer for the real class,
    so a role's type checks behave the same with and without the guard."""

    _real: type

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls._real)


def _clock(name: str, read: Callable[..., Any]) -> classmethod:  # type: ignore[type-arg]
    def guarded(cls: type, *args: Any, **kwargs: Any) -> Any:
        if _FORBIDDEN.get():
            _raise(f"{name}()")
        return read(*args, **kwargs)

    return classmethod(guarded)


class GuardedDatetime(_datetime.datetime, metaclass=_PassThrough):
    """``datetime.datetime`` whose clock reads raise while effects are forbidden."""

    _real = _datetime.datetime

    def __new__(cls, *args: Any, **kwargs: Any) -> _datetime.datetime:  # type: ignore[misc]
        return _datetime.datetime(*args, **kwargs)

    now = _clock("datetime.now", _datetime.datetime.now)
    utcnow = _clock("datetime.utcnow", _datetime.datetime.utcnow)
    today = _clock("datetime.today", _datetime.datetime.today)


class GuardedDate(_datetime.date, metaclass=_PassThrough):
    """``datetime.date`` whose ``today()`` raises while effects are forbidden."""

    _real = _datetime.date

    def __new__(cls, *args: Any, **kwargs: Any) -> _datetime.date:  # type: ignore[misc]
        return _datetime.date(*args, **kwargs)

    today = _clock("date.today", _datetime.date.today)


def _guarded_datetime_module() -> types.ModuleType:
    module = types.ModuleType("datetime", _datetime.__doc__)
    module.__dict__.update({k: v for k, v in vars(_datetime).items() if not k.startswith("__")})
    module.datetime = GuardedDatetime  # type: ignore[attr-defined]
    module.date = GuardedDate  # type: ignore[attr-defined]
    return module


_GUARDED_DATETIME_MODULE = _guarded_datetime_module()
_REBIND: dict[int, object] = {id(_datetime.datetime): GuardedDatetime,
                              id(_datetime.date): GuardedDate,
                              id(_datetime): _GUARDED_DATETIME_MODULE}


_REBOUND: weakref.WeakSet[types.ModuleType] = weakref.WeakSet()
"""Role modules already rebound (a module's imports run once; weak: ids get reused)."""


def _guard_role_clocks() -> None:
    """Rebind ``datetime``/``date``/the ``datetime`` module in every loaded role module."""
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or not name.startswith(
                GUARDED_MODULES) or module in _REBOUND:
            continue
        _REBOUND.add(module)
        names = vars(module)
        for attr, value in list(names.items()):
            replacement = _REBIND.get(id(value))
            if replacement is not None:
                names[attr] = replacement


def _import_listing(path: object) -> bool:
    """Whether a directory listing is the import system filling its path cache: the
    interpreter's and the environment's library trees, a ``sys.path`` entry itself, or the
    directory of a package already imported (where its submodules are looked up)."""
    if not isinstance(path, str) or not path:
        return False
    path = path.rstrip("/") or "/"
    if any(path == r or path.startswith(r + "/")
           for r in (sys.prefix.rstrip("/"), sys.base_prefix.rstrip("/"))):
        return True
    if path in (p.rstrip("/") for p in sys.path if p):
        return True
    # vars(), not getattr(): a lazy module's __getattr__ must not run inside an audit hook.
    return any(path in (str(d).rstrip("/") for d in vars(m).get("__path__", None) or ())
               for m in list(sys.modules.values()) if isinstance(m, types.ModuleType))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _FORBIDDEN.get() or event not in _AUDITED:
        return
    if event in _LISTINGS and args and _import_listing(args[0]):
        # A lazy import inside a library (numpy.ma on first use) lists its package
        # directory: that is not a role reading the file system.
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
    _guard_role_clocks()
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
