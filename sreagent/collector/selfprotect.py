"""Self-protection: the collector measures what it costs and backs off before the host notices.

Each interval the daemon measures its own CPU (``getrusage``, all threads, so sending counts
too) and resident memory, and the :class:`Governor` turns that and the spool's fill into a
:class:`Decision`:

* **mode** -- ``normal``, ``pressure`` or ``critical``: the worse of the spool's fill
  (``pressure_fill_ratio``, ``critical_fill_ratio``) and the resource use (over the CPU or RSS
  budget is ``pressure``; twice the CPU budget is ``critical``). Memory over budget is
  reported but sheds nothing: a shed source does not give its memory back (BCC's LLVM stays
  mapped), so shedding for RSS would only lose telemetry.
* CPU is judged as an average over the last ``cpu_window_s`` (30 s): a periodic spike such
  as the process scan counts for what it costs on average, not as an overload every 15 s.
* **interval** -- over the CPU budget the interval is stretched by 1.5 each interval (up to
  ``max_interval_seconds``); it eases back by the same factor after
  ``recover_after_intervals`` intervals under budget. A filling spool stretches it too (x2 in
  pressure, x4 in critical), so a controller outage fills the spool more slowly.
* **shed** -- over budget, one more optional source is shed per interval, in ``shed_order``;
  in ``critical`` every optional source is shed. Shed sources come back one at a time, last
  shed first, after ``recover_after_intervals`` intervals under budget and outside critical.

Nothing is sticky: every input is measured afresh each interval (the seed stayed in pressure
forever after its first transport error, weakness 20). The governor is pure; the meter reads
the kernel.
"""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["normal", "pressure", "critical"]
MODE_LEVEL: dict[Mode, int] = {"normal": 0, "pressure": 1, "critical": 2}
_LEVEL_MODE: dict[int, Mode] = {level: mode for mode, level in MODE_LEVEL.items()}
STRETCH_STEP = 1.5
FILL_STRETCH: dict[Mode, float] = {"normal": 1.0, "pressure": 2.0, "critical": 4.0}


@dataclass(frozen=True)
class SelfUsage:
    """The collector's own cost over the last interval."""

    cpu_cores: float
    """CPU seconds used per wall second (0.01 = 1 % of one core)."""
    cpu_seconds: float
    """CPU seconds used over the interval."""
    wall_seconds: float
    rss_bytes: int


class SelfMeter:
    """Measures the process's CPU (user + system, all threads) and current RSS."""

    def __init__(
        self,
        proc: Path = Path("/proc"),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._statm = proc / "self" / "statm"
        self._monotonic = monotonic
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._last_cpu = self._cpu()
        self._last_wall = monotonic()

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def rss_bytes(self) -> int:
        """Current resident set (``/proc/self/statm`` field 2; getrusage only has the peak)."""
        try:
            return int(self._statm.read_bytes().split()[1]) * self._page
        except (OSError, IndexError, ValueError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def measure(self) -> SelfUsage:
        """Usage since the previous call (or since construction)."""
        cpu, wall = self._cpu(), self._monotonic()
        cpu_seconds = max(0.0, cpu - self._last_cpu)
        wall_seconds = max(1e-9, wall - self._last_wall)
        self._last_cpu, self._last_wall = cpu, wall
        return SelfUsage(cpu_seconds / wall_seconds, cpu_seconds, wall_seconds, self.rss_bytes())


@dataclass(frozen=True)
class Decision:
    mode: Mode
    interval_s: float
    shed: tuple[str, ...]
    """Optional sources not read this interval, in the order they were shed."""
    reasons: tuple[str, ...]
    """Why the mode is not normal or the interval is stretched (for logs and capabilities)."""

    @property
    def level(self) -> int:
        return MODE_LEVEL[self.mode]


def shed_sequence(optional: Sequence[str], shed_order: Sequence[str]) -> list[str]:
    """The order optional sources are shed in: ``shed_order`` first, then the rest by name."""
    named = [name for name in shed_order if name in optional]
    return named + sorted(set(optional) - set(named))


class Governor:
    """Turns measured usage and spool fill into a :class:`Decision` (pure, stateful only in the
    stretch factor, the shed list and the count of calm intervals)."""

    def __init__(
        self,
        *,
        base_interval_s: float,
        max_interval_s: float,
        cpu_budget_cores: float,
        rss_budget_bytes: int,
        pressure_fill_ratio: float = 0.5,
        critical_fill_ratio: float = 0.8,
        optional_sources: Sequence[str] = (),
        shed_order: Sequence[str] = (),
        recover_after: int = 5,
        cpu_window_s: float = 30.0,
    ) -> None:
        self.base_interval_s = base_interval_s
        self.max_interval_s = max(max_interval_s, base_interval_s)
        self.cpu_budget = cpu_budget_cores
        self.rss_budget = rss_budget_bytes
        self.pressure_fill = pressure_fill_ratio
        self.critical_fill = critical_fill_ratio
        self.recover_after = recover_after
        self.cpu_window_s = cpu_window_s
        self._window: deque[tuple[float, float]] = deque()
        self.sequence = shed_sequence(optional_sources, shed_order)
        self.stretch = 1.0
        self.shed: list[str] = []
        self.calm = 0

    def decide(self, usage: SelfUsage, fill_ratio: float) -> Decision:
        reasons: list[str] = []
        fill_mode: Mode = "normal"
        if fill_ratio >= self.critical_fill:
            fill_mode = "critical"
        elif fill_ratio >= self.pressure_fill:
            fill_mode = "pressure"
        if fill_mode != "normal":
            reasons.append(f"spool {fill_ratio:.0%} full")

        cores = self._windowed_cores(usage)
        over_cpu = cores > self.cpu_budget
        over_rss = usage.rss_bytes > self.rss_budget
        use_mode: Mode = "normal"
        if over_cpu or over_rss:
            use_mode = "pressure"
        if cores >= 2 * self.cpu_budget:
            use_mode = "critical"
        if over_cpu:
            reasons.append(
                f"CPU {cores:.2%} of a core over the last {self.cpu_window_s:g} s, over the "
                f"budget of {self.cpu_budget:.2%}"
            )
        if over_rss:
            reasons.append(f"RSS {usage.rss_bytes} bytes over the budget of {self.rss_budget}")
        mode = _LEVEL_MODE[max(MODE_LEVEL[fill_mode], MODE_LEVEL[use_mode])]

        max_stretch = self.max_interval_s / self.base_interval_s
        if over_cpu:
            self.calm = 0
            self.stretch = min(max_stretch, self.stretch * STRETCH_STEP)
            self._shed_one()
        else:
            self.calm += 1
            if self.calm >= self.recover_after:
                self.calm = 0
                self.stretch = max(1.0, self.stretch / STRETCH_STEP)
                if mode != "critical" and self.shed:
                    self.shed.pop()
        if mode == "critical":
            for name in self.sequence:
                if name not in self.shed:
                    self.shed.append(name)
        factor = max(self.stretch, FILL_STRETCH[fill_mode])
        interval = min(self.max_interval_s, self.base_interval_s * factor)
        return Decision(mode, interval, tuple(self.shed), tuple(reasons))

    def _windowed_cores(self, usage: SelfUsage) -> float:
        """CPU per wall second over the last ``cpu_window_s`` (at least the last interval), so a
        periodic spike (the process scan every 15 s) is judged by what it costs on average."""
        self._window.append((usage.cpu_seconds, usage.wall_seconds))
        while (
            len(self._window) > 1
            and sum(w for _, w in self._window) - self._window[0][1] >= self.cpu_window_s
        ):
            self._window.popleft()
        wall = sum(w for _, w in self._window)
        return sum(c for c, _ in self._window) / wall if wall > 0 else 0.0

    def _shed_one(self) -> None:
        for name in self.sequence:
            if name not in self.shed:
                self.shed.append(name)
                return
