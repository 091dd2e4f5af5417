"""The runtime guard catches clock reads through ``datetime`` in role modules, and lets the
import system list its own directories (a library's lazy import is no role I/O)."""

from __future__ import annotations

import datetime as real_datetime
import os
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sreagent.runtime import EffectForbidden, forbid_effects
from sreagent.testing import RoleEnvironment

_ROLE_SOURCE = """
import datetime
import datetime as dt
from datetime import date, datetime as Datetime


def now(ctx):
    return Datetime.now()


def utcnow(ctx):
    return dt.datetime.utcnow()


def today(ctx):
    return date.today()


def module_today(ctx):
    return datetime.date.today()


def datetime_today(ctx):
    return Datetime.today()


def no_clock(ctx):
    # Building and checking datetimes is fine: only reading the clock is an effect.
    made = Datetime(2026, 3, 2, 14, 0, tzinfo=datetime.timezone.utc)
    return made, isinstance(made, Datetime), type(made), Datetime.fromtimestamp(0, dt.UTC)
"""


@pytest.fixture
def role_module() -> Iterator[types.ModuleType]:
    """A role module under sreagent.roles that reads the clock the ways the static check
    forbids (it lives only in sys.modules, never on disk)."""
    name = "sreagent.roles._clock_probe"
    module = types.ModuleType(name)
    exec(compile(_ROLE_SOURCE, f"<{name}>", "exec"), module.__dict__)
    sys.modules[name] = module
    try:
        yield module
    finally:
        del sys.modules[name]


@pytest.mark.parametrize("role", ["now", "utcnow", "today", "module_today", "datetime_today"])
def test_clock_reads_through_datetime_raise_in_a_role(role_module: types.ModuleType,
                                                      role: str) -> None:
    fn: Callable[[Any], Any] = getattr(role_module, role)
    with pytest.raises(EffectForbidden, match=r"(datetime|date)\.(now|utcnow|today)"):
        RoleEnvironment().run(fn)
    # Outside the guard the same code reads the clock as usual.
    assert fn(None) is not None


def test_datetimes_without_the_clock_still_work(role_module: types.ModuleType) -> None:
    made, is_instance, kind, epoch = RoleEnvironment().run(role_module.no_clock)
    assert made == real_datetime.datetime(2026, 3, 2, 14, 0, tzinfo=real_datetime.UTC)
    assert is_instance and kind is real_datetime.datetime
    assert epoch == real_datetime.datetime(1970, 1, 1, tzinfo=real_datetime.UTC)
    # Ordinary datetimes: they pickle as the real class (a process-wide swap would not).
    assert pickle.loads(pickle.dumps(made)) == made
    # A real datetime passes the role module's isinstance check too.
    assert isinstance(real_datetime.datetime(2020, 1, 1), role_module.Datetime)


def test_the_process_datetime_is_untouched(role_module: types.ModuleType) -> None:
    with forbid_effects():
        pass
    assert real_datetime.datetime.now() is not None
    assert sys.modules["datetime"].datetime is real_datetime.datetime


def test_import_machinery_may_list_library_directories() -> None:
    library = os.path.dirname(os.__file__)
    with forbid_effects():
        assert os.listdir(library)
        with pytest.raises(EffectForbidden):
            os.listdir("/tmp")
