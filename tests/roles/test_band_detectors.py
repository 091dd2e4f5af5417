"""Band-exit detectors: filling gauges, error rates and peer divergence open an incident
within three samples of leaving their baseline band, by the ground truth's own definition of
"visible" (sreagent.scenarios._stats), and bursts that recede or that all peers share do not."""

from __future__ import annotations

import numpy as np
import pytest

from sreagent.roles._detectors import detect as run_detectors
from sreagent.runtime import ChainConfig, EvidenceView
from sreagent.scenarios._stats import baseline_band, first_deviation
from sreagent.testing import WindowBuilder

from . import windows
from .windows import ONSET, opened_index


def _visible_index(view: EvidenceView, metric: str, entity: str, onset: int) -> int:
    """When the ground truth calls the series visible, from its baseline before ``onset``."""
    s = view.get(metric, entity)
    assert s is not None
    band = baseline_band(metric, s.values[:onset])
    hit = first_deviation(metric, band, s.values, np.ones(len(s), bool), onset)
    assert hit is not None
    return hit


def _filling_filesystem(seed: int = 3) -> WindowBuilder:
    # A slow fill that never comes near the 95 % static threshold inside the window.
    w = windows.quiet(seed=seed)
    w.gauge("filesystem_used_ratio", "fs/var/log", base=0.40, noise=0.002)
    w.ramp("filesystem_used_ratio", "fs/var/log", start_s=ONSET, to=0.70, ramp_s=600)
    return w


def test_a_filling_filesystem_opens_within_three_samples_of_becoming_visible() -> None:
    for seed in (3, 4, 5):
        view = _filling_filesystem(seed).view()
        visible = _visible_index(view, "filesystem_used_ratio", "fs/var/log", ONSET)
        opened = opened_index(view)
        assert opened is not None, "a filesystem filling past its normal range opened nothing"
        assert 0 <= opened - visible <= 3, (seed, visible, opened)
        used = view.get("filesystem_used_ratio", "fs/var/log")
        assert used is not None and float(used.values.max()) < 0.95


def test_a_fill_gauge_that_recedes_opens_nothing() -> None:
    w = windows.quiet(seed=6)
    w.gauge("filesystem_used_ratio", "fs/var/log", base=0.40, noise=0.002)
    # Out of its band for two samples (a log rotated a moment late), then back.
    w.ramp("filesystem_used_ratio", "fs/var/log", start_s=ONSET, to=0.45, end_s=ONSET + 2,
           noise=0.002)
    assert opened_index(w.view()) is None


def test_a_listen_queue_burst_is_not_an_overflow_but_a_filling_queue_is() -> None:
    def window(to: float, seconds_up: int) -> WindowBuilder:
        w = windows.quiet(seed=7)
        w.gauge("tcp_listen_backlog_ratio", base=0.02, noise=0.015, labels={"port": "8080"})
        w.ramp("tcp_listen_backlog_ratio", labels={"port": "8080"}, start_s=ONSET, to=to,
               ramp_s=seconds_up, end_s=ONSET + seconds_up + 2, noise=0.005)
        return w

    # A reconnect storm: the queue reaches 10 % for a few seconds.
    assert opened_index(window(0.10, 3).view()) is None
    # A queue that fills towards its limit opens before the static 90 % threshold.
    filling = window(0.85, 30).view()
    opened = opened_index(filling)
    assert opened is not None and opened < ONSET + 10


def test_drops_appearing_on_a_quiet_nic_open_and_noise_near_the_band_does_not() -> None:
    w = windows.quiet(seed=8)
    w.ramp("network_drops_per_second", "nic/eth0", start_s=ONSET, to=40.0, ramp_s=5)
    opened = opened_index(w.view())
    assert opened is not None and ONSET <= opened <= ONSET + 3

    noisy = windows.quiet(seed=8)
    noisy.gauge("network_drops_per_second", "nic/eth0", base=0.02, noise=0.01)
    # Just over the band for a while: less than the band's width above it.
    noisy.ramp("network_drops_per_second", "nic/eth0", start_s=ONSET, to=0.07,
               end_s=ONSET + 6)
    assert opened_index(noisy.view()) is None


def _gpus(drop: tuple[int, ...], seed: int = 9) -> WindowBuilder:
    w = windows.quiet(seed=seed)
    for g in range(8):
        w.gauge("gpu_utilisation_ratio", f"gpu/{g}", base=0.95, noise=0.02, hi=1.0)
    for g in drop:
        w.ramp("gpu_utilisation_ratio", f"gpu/{g}", start_s=ONSET, to=0.4, ramp_s=20,
               end_s=ONSET + 60, noise=0.01)
    return w


def test_one_gpu_leaving_its_band_alone_is_a_divergence() -> None:
    view = _gpus(drop=(5,)).view()
    visible = _visible_index(view, "gpu_utilisation_ratio", "gpu/5", ONSET)
    opened = opened_index(view)
    assert opened is not None and 0 <= opened - visible <= 3
    det = run_detectors(view, ChainConfig())
    fired = {d.series.entity for d in det.by_metric("gpu_utilisation_ratio")
             if d.detector == "peer_divergence"}
    assert fired == {"gpu/5"}


def test_all_gpus_idling_together_is_no_divergence() -> None:
    # A checkpoint: every GPU of the job waits on storage at once.
    assert opened_index(_gpus(drop=tuple(range(8))).view()) is None


def test_band_exits_are_causal() -> None:
    """The score at a sample depends only on the samples up to it: cutting the window right
    after the fill became visible gives the same scores up to the cut."""
    w = WindowBuilder(seconds=1800, seed=11)
    w.gauge("filesystem_used_ratio", "fs/data", base=0.40, noise=0.002)
    w.ramp("filesystem_used_ratio", "fs/data", start_s=1200, to=0.70, ramp_s=300)
    frames = w.frames()
    full = EvidenceView.from_frames(frames)
    cut = EvidenceView.from_frames([f for f in frames
                                    if int(f.samples["ts_ns"].to_numpy().max()) <= full.start_ns
                                    + 1260 * 10**9])
    cfg = ChainConfig()

    def scores(view: EvidenceView) -> np.ndarray:
        d = run_detectors(view, cfg).get("filesystem_used_ratio", "fs/data")
        assert d is not None
        return d.score

    whole, part = scores(full), scores(cut)
    assert part.max() > 0, "the cut window must already contain the band exit"
    np.testing.assert_array_equal(whole[: part.shape[0]], part)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["05_memory_leak_oom_host", "09_filesystem_full",
                                      "24_collective_straggler", "12_packet_loss"])
def test_library_faults_are_detected_within_three_samples(scenario: str) -> None:
    """A leak, a filling filesystem, a straggler and packet loss from the scenario library:
    the chain's incident opens within three samples of the ground truth's visibility."""
    from sreagent.chain.lab import lab_verdict
    from sreagent.scenarios import generate, load_scenario

    verdict = lab_verdict(generate(load_scenario(scenario)))
    assert verdict["correct"] and verdict["localised"], verdict
    assert 0 <= verdict["detection_delay_samples"] <= 3, verdict


@pytest.mark.slow
def test_a_library_control_with_cron_and_backups_opens_no_incident() -> None:
    from sreagent.chain.lab import lab_verdict
    from sreagent.scenarios import generate, load_scenario

    verdict = lab_verdict(generate(load_scenario("29_control_web_cron_backup")))
    assert verdict["incident"] is False, verdict
