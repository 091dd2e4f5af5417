"""Live fault injection: real faults on this host, bounded in time and always cleaned up.

The facade the ``sreagent lab live`` command and the end-to-end tests use:

- :func:`run_injection` (context manager): inject, yield an :class:`Injection` carrying the
  entity the analysis should blame, undo on exit, exception, SIGINT/SIGTERM/SIGHUP; a guardian
  process sweeps the run if its owner is SIGKILLed.
- :func:`sweep` / :func:`find_leftovers`: find and remove everything named with the
  ``sreagent-lab-`` prefix that a crashed run left behind (runs in progress are left alone).
- :func:`run_live`: a whole game-day run (controller, collector, baseline, injection,
  incident, hypothesis, optional approval, package, replay, postmortem): ``sreagent lab live``.
- :data:`INJECTORS` / :func:`make_injector`: the scenarios (``cpu-hog``, ``cgroup-throttle``,
  ``memory-oom``, ``io-saturation``, ``net-loss``, ``fd-leak``, ``noisy-neighbour``), each with
  ``plan()``, ``inject()``, ``undo()`` and ``injected_entity``.

See docs/live-lab.md.
"""

from sreagent.lab.live._errors import LabFailed, LabRefused
from sreagent.lab.live._flow import E2E_OPTIONS, LiveResult, run_live
from sreagent.lab.live._host import LabHost
from sreagent.lab.live._injector import MAX_DURATION_S, Injector, Plan, PlannedResource, UndoResult
from sreagent.lab.live._names import PREFIX, TAG_ENV, new_tag, run_name
from sreagent.lab.live._registry import INJECTORS, make_injector
from sreagent.lab.live._run import Cleanup, Injection, run_injection
from sreagent.lab.live._steady import HostNotSteady
from sreagent.lab.live._sweep import Leftover, SweepReport, find_leftovers, sweep

__all__ = [
    "E2E_OPTIONS",
    "INJECTORS",
    "MAX_DURATION_S",
    "PREFIX",
    "TAG_ENV",
    "Cleanup",
    "HostNotSteady",
    "Injection",
    "Injector",
    "LabFailed",
    "LabHost",
    "LabRefused",
    "Leftover",
    "LiveResult",
    "Plan",
    "PlannedResource",
    "SweepReport",
    "UndoResult",
    "find_leftovers",
    "make_injector",
    "new_tag",
    "run_injection",
    "run_live",
    "run_name",
    "sweep",
]
