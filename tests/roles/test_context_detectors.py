"""Band exits of activity metrics that count only with discriminating context
(sreagent.roles._detectors._gate_by_context): a steady worker's first surge that the shared
resource feels, a cgroup's throttling that starts while its use climbs, a device's latency
that climbs while the IO offered to it stays in its band. Each opens an incident within
three samples of becoming visible; its look-alike (an idle job waking up, a job that already
ran in the window, a backup whose latency follows its own throughput, a throttling blip)
opens nothing."""

from __future__ import annotations

import numpy as np

from sreagent.roles._detectors import detect as run_detectors
from sreagent.runtime import ChainConfig, EvidenceView
from sreagent.scenarios._stats import baseline_band, first_deviation
from sreagent.testing import WindowBuilder

from . import windows
from .windows import ONSET, opened_index

PROC = "process/5150"
DISK = "disk/nvme0n1"
WEB = "cgroup/system.slice/web.service"



def _visible_index(view: EvidenceView, metric: str, entity: str, **labels: str) -> int:
    s = view.get(metric, entity, **labels)
    assert s is not None
    band = baseline_band(metric, s.values[:ONSET])
    hit = first_deviation(metric, band, s.values, np.ones(len(s), bool), ONSET)
    assert hit is not None
    return hit


def _detectors_of(view: EvidenceView, metric: str) -> set[str]:
    return {d.detector for d in run_detectors(view, ChainConfig()).by_metric(metric)}


# --- a worker's first surge ------------------------------------------------------------------


def _surge(base: float, earlier_burst: bool = False, host_to: float = 0.6,
           seed: int = 21) -> WindowBuilder:
    """A process climbs to 3 cores at ONSET; the host's CPU leaves its band but stays below
    every static threshold, so only the surge can open the incident."""
    w = windows.quiet(seed=seed)
    w.gauge("process_cpu_ratio", PROC, base=base, noise=base * 0.05)
    if earlier_burst:
        # The same job already ran once earlier in the window (in its baseline part).
        w.ramp("process_cpu_ratio", PROC, start_s=100, to=3.0, ramp_s=5, end_s=125)
        w.ramp("cpu_utilisation_ratio", start_s=100, to=host_to, ramp_s=5, end_s=125)
    w.ramp("process_cpu_ratio", PROC, start_s=ONSET, to=3.0, ramp_s=10, noise=0.01)
    w.ramp("cpu_utilisation_ratio", start_s=ONSET, to=host_to, ramp_s=10, noise=0.005)
    return w


def test_a_steady_process_surging_opens_within_three_samples() -> None:
    for seed in (21, 22, 23):
        view = _surge(base=0.05, seed=seed).view()
        visible = _visible_index(view, "process_cpu_ratio", PROC)
        opened = opened_index(view)
        assert opened is not None, f"seed {seed}: the surge opened nothing"
        assert 0 <= opened - visible <= 3, (seed, visible, opened)
        assert "first_surge" in _detectors_of(view, "process_cpu_ratio")


def test_an_idle_job_waking_up_or_a_repeat_of_an_earlier_surge_opens_nothing() -> None:
    # cron or a backup agent: idle through the baseline, then the scheduled job runs.
    assert opened_index(_surge(base=0.0005).view()) is None
    # The same surge, but it already happened earlier in the window: routine.
    assert opened_index(_surge(base=0.05, earlier_burst=True).view()) is None


def test_a_surge_the_host_does_not_feel_opens_nothing() -> None:
    # The host's CPU stays in its band (a 64-core host): a busy process, no incident.
    view = _surge(base=0.05, host_to=0.30).view()
    assert opened_index(view) is None
    assert "first_surge" not in _detectors_of(view, "process_cpu_ratio")


def test_a_tenant_surging_on_a_shared_disk_opens_within_three_samples() -> None:
    w = windows.quiet(seed=24)
    w.ramp("cgroup_io_bytes_per_second", WEB, labels={"direction": "write"}, start_s=ONSET,
           to=2e8, ramp_s=10)
    w.ramp("disk_utilisation_ratio", DISK, start_s=ONSET, to=0.85, ramp_s=10)
    view = w.view()
    visible = _visible_index(view, "cgroup_io_bytes_per_second", WEB, direction="write")
    opened = opened_index(view)
    assert opened is not None and 0 <= opened - visible <= 3, (visible, opened)


# --- a quota that starts to bite -------------------------------------------------------------


def _quota(usage_to: float, throttled_to: float, end_s: float | None = None,
           seed: int = 25) -> WindowBuilder:
    w = windows.quiet(seed=seed)
    w.gauge("cgroup_cpu_throttled_seconds_per_second", WEB, base=2e-5, noise=4e-6)
    w.ramp("cgroup_cpu_usage_ratio", WEB, start_s=ONSET, to=usage_to, ramp_s=10, end_s=end_s)
    w.ramp("cgroup_cpu_throttled_seconds_per_second", WEB, start_s=ONSET, to=throttled_to,
           ramp_s=10, end_s=end_s)
    return w


def test_throttling_that_starts_while_the_use_climbs_opens_within_three_samples() -> None:
    view = _quota(usage_to=1.95, throttled_to=0.08).view()
    visible = min(_visible_index(view, "cgroup_cpu_usage_ratio", WEB),
                  _visible_index(view, "cgroup_cpu_throttled_seconds_per_second", WEB))
    opened = opened_index(view)
    assert opened is not None and 0 <= opened - visible <= 3, (visible, opened)
    assert "quota_throttling" in _detectors_of(view, "cgroup_cpu_throttled_seconds_per_second")


def test_a_throttling_blip_without_more_use_opens_nothing() -> None:
    # Throttled time doubles for a few seconds while the cgroup's use stays in its band.
    view = _quota(usage_to=1.0, throttled_to=6e-5, end_s=ONSET + 8).view()
    assert opened_index(view) is None


# --- a device that slows down ----------------------------------------------------------------


def _disk(latency_to: float, read_to: float | None, load: bool = True,
          seed: int = 26) -> WindowBuilder:
    w = windows.quiet(seed=seed)
    if load:
        w.gauge("disk_read_bytes_per_second", DISK, base=2e7, noise=1e6)
        w.gauge("disk_write_bytes_per_second", DISK, base=1e7, noise=5e5)
    w.ramp("disk_await_seconds", DISK, start_s=ONSET, to=latency_to, ramp_s=30)
    if read_to is not None:
        w.ramp("disk_read_bytes_per_second", DISK, start_s=ONSET, to=read_to, ramp_s=30)
    return w


def test_latency_climbing_for_the_same_load_opens_within_three_samples() -> None:
    # Far below the NVMe's static 10 ms: the slowdown is what opens the incident.
    view = _disk(latency_to=0.004, read_to=None).view()
    visible = _visible_index(view, "disk_await_seconds", DISK)
    opened = opened_index(view)
    assert opened is not None and 0 <= opened - visible <= 3, (visible, opened)
    assert "device_slowdown" in _detectors_of(view, "disk_await_seconds")


def test_latency_that_follows_the_devices_own_throughput_opens_nothing() -> None:
    # A backup: more bytes, so more latency.
    assert opened_index(_disk(latency_to=0.004, read_to=3e8).view()) is None
    # No load series at all: a slowdown cannot be told from more work, so it does not count.
    view = _disk(latency_to=0.004, read_to=None, load=False).view()
    assert "device_slowdown" not in _detectors_of(view, "disk_await_seconds")
