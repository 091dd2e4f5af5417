"""Every scorer on small examples whose answers were worked out by hand (shown in comments)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sreagent.eval import scoring as sc

# --- RCA ----------------------------------------------------------------------------------


def test_ac_at_k_on_toy_rankings() -> None:
    rankings = [["a", "b", "c"], ["b", "a"], ["c"], ["b", "c", "d", "a"]]
    truths = ["a", "a", "a", "a"]
    # hits: case 1 at rank 1, case 2 at rank 2, case 3 never, case 4 at rank 4
    assert sc.ac_at_k(rankings, truths, 1) == pytest.approx(1 / 4)
    assert sc.ac_at_k(rankings, truths, 2) == pytest.approx(2 / 4)
    assert sc.ac_at_k(rankings, truths, 3) == pytest.approx(2 / 4)
    assert sc.ac_at_k(rankings, truths, 4) == pytest.approx(3 / 4)
    # Avg@5 = (1/4 + 2/4 + 2/4 + 3/4 + 3/4) / 5 = 11/20
    assert sc.avg_at_k(rankings, truths, 5) == pytest.approx(11 / 20)
    assert sc.rca_metrics(rankings, truths) == pytest.approx(
        {"ac@1": 0.25, "ac@3": 0.5, "avg@5": 0.55}
    )


def test_ac_at_k_counts_distinct_items_so_repeats_do_not_crowd_out_the_truth() -> None:
    assert sc.hit_at_k(["b", "b", "a"], "a", 2)
    assert not sc.hit_at_k(["b", "c", "a"], "a", 2)


def test_ac_at_k_refuses_undefined_inputs() -> None:
    with pytest.raises(ValueError, match="zero cases"):
        sc.ac_at_k([], [], 1)
    with pytest.raises(ValueError, match="rankings"):
        sc.ac_at_k([["a"]], ["a", "b"], 1)
    with pytest.raises(ValueError, match="k must"):
        sc.ac_at_k([["a"]], ["a"], 0)


# --- timeline helpers ---------------------------------------------------------------------

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def minutes(n: int) -> np.ndarray:
    return np.array(
        [np.datetime64(T0.replace(tzinfo=None), "ms") + np.timedelta64(i, "m") for i in range(n)]
    )


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_window_spans_and_alarm_mask_map_instants_to_samples() -> None:
    t = minutes(10)
    # [2.5, 5] holds samples 3,4,5; [8, 20] holds 8,9; [5.2, 5.8] holds none and is dropped
    assert sc.window_index_spans(t, [(at(2.5), at(5)), (at(8), at(20)), (at(5.2), at(5.8))]) == [
        (3, 5),
        (8, 9),
    ]
    # an alarm between samples belongs to the sample before it; one before the first is dropped
    mask = sc.alarm_mask(t, [at(4.5), at(7), at(-1)])
    assert np.flatnonzero(mask).tolist() == [4, 7]


def test_runs_finds_maximal_runs() -> None:
    assert sc.runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)) == [(0, 1), (3, 3), (6, 8)]
    assert sc.runs(np.zeros(4, dtype=bool)) == []


# --- event-wise -----------------------------------------------------------------------------


def test_event_counts_by_hand() -> None:
    alarms = np.zeros(20, dtype=bool)
    alarms[[1, 2, 6, 7, 8, 15]] = True  # runs: [1-2], [6-8], [15]
    spans = [(5, 7), (10, 12), (14, 16)]
    counts = sc.event_counts(alarms, spans)
    # windows: (5,7) hit by 6,7; (10,12) missed; (14,16) hit by 15 -> 2 of 3 detected
    # runs: [1-2] false, [6-8] overlaps (5,7) true, [15] true -> 2 of 3 true
    assert counts == sc.EventCounts(windows=3, detected_windows=2, alarm_runs=3, true_alarm_runs=2)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 / 3)


def test_event_counts_add_up_across_cases_and_handle_silence() -> None:
    silent = sc.event_counts(np.zeros(5, dtype=bool), [(1, 2)])
    assert silent.precision == 0.0 and silent.recall == 0.0 and silent.f1 == 0.0
    total = silent + sc.event_counts(np.array([0, 1, 0, 0, 1], dtype=bool), [(1, 1)])
    assert total == sc.EventCounts(windows=2, detected_windows=1, alarm_runs=2, true_alarm_runs=1)


# --- point-wise with and without point adjustment -------------------------------------------


def test_point_adjustment_omnianomaly_convention() -> None:
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    alarms = np.array([0, 0, 1, 0, 0, 0, 0, 0, 1], dtype=bool)
    # the first labelled segment (1-3) has one alarm -> all of it counts; the second (6-7) none
    assert sc.point_adjust(alarms, labels).astype(int).tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 1]
    raw = sc.point_counts(alarms, labels, adjust=False)
    adjusted = sc.point_counts(alarms, labels, adjust=True)
    assert raw == sc.Counts(tp=1, fp=1, fn=4)
    assert adjusted == sc.Counts(tp=3, fp=1, fn=2)
    p, r, f = sc.precision_recall_f1(adjusted)
    assert (p, r) == pytest.approx((3 / 4, 3 / 5))
    assert f == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_point_counts_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        sc.point_counts(np.zeros(3, dtype=bool), np.zeros(4, dtype=bool), adjust=False)


# --- detection delay ------------------------------------------------------------------------


def test_detection_delay_from_window_start_and_from_anchor() -> None:
    t = minutes(30)
    alarms = np.zeros(30, dtype=bool)
    alarms[[7, 9, 25]] = True
    spans = [(5, 10), (15, 20), (22, 28)]
    # window 1: first alarm at 7, start 5 -> 120 s; window 2: missed; window 3: 25 - 22 -> 180 s
    assert sc.detection_delays(t, alarms, spans) == [120.0, 180.0]
    anchors = [at(8), at(17), at(24)]
    # measured from the anchors: 7 - 8 -> -60 s (alarm before the labelled instant), 25 - 24
    assert sc.detection_delays(t, alarms, spans, anchors) == [-60.0, 60.0]


# --- NAB --------------------------------------------------------------------------------------


def test_nab_sigma_matches_its_published_anchor_values() -> None:
    # NAB's sweeper docstring: sigma(-1) = 0.98661, sigma(-0.5) = 0.84828, sigma(0) = 0
    assert sc.nab_sigma(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert sc.nab_sigma(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert sc.nab_sigma(0.0) == 0.0
    assert sc.nab_sigma(3.5) == -1.0


def test_nab_probation_length() -> None:
    assert sc.nab_probation(20) == 3  # floor(0.15 * 20)
    assert sc.nab_probation(4032) == 604
    assert sc.nab_probation(22683) == 750  # capped


def test_nab_case_score_computed_by_hand() -> None:
    # n = 20: probation = 3 samples. One window, samples 10..14 (W = 5, r = 14).
    alarms = np.zeros(20, dtype=bool)
    alarms[[1, 5, 12, 13, 16]] = True
    profile = sc.NAB_PROFILES["standard"]
    result = sc.nab_case_score(alarms, [(10, 14)], profile)
    # alarm 1: in probation, ignored.
    # alarm 5: before any window -> -A_FP = -0.11.
    # alarm 12: first in window, y = -(14 - 12 + 1)/5 = -0.6,
    #   sigma(-0.6) = 2/(1 + e^-3) - 1 = 0.905148; / sigma(-1) = 0.986614 -> 0.917429.
    # alarm 13: later alarm in the same window, adds nothing.
    # alarm 16: after the window, y = |16 - 14| / (5 - 1) = 0.5,
    #   sigma(0.5) = 2/(1 + e^2.5) - 1 = -0.848284; x 0.11 -> -0.093311.
    assert result.score == pytest.approx(0.917429 - 0.11 - 0.093311, abs=1e-6)
    assert result.null == -1.0 and result.perfect == 1.0
    # normalised: 100 (0.714118 + 1) / (1 + 1) = 85.7059
    assert sc.nab_normalised(result) == pytest.approx(85.7059, abs=1e-4)


def test_nab_profiles_weigh_misses_and_false_alarms_differently() -> None:
    alarms = np.zeros(20, dtype=bool)
    alarms[5] = True  # one false alarm before the window, the window is missed
    spans = [(10, 14)]
    standard = sc.nab_case_score(alarms, spans, sc.NAB_PROFILES["standard"])
    low_fp = sc.nab_case_score(alarms, spans, sc.NAB_PROFILES["reward_low_FP"])
    low_fn = sc.nab_case_score(alarms, spans, sc.NAB_PROFILES["reward_low_FN"])
    assert standard.score == pytest.approx(-1.0 - 0.11)
    assert low_fp.score == pytest.approx(-1.0 - 0.22)
    assert low_fn.score == pytest.approx(-2.0 - 0.11)
    assert low_fn.null == -2.0


def test_nab_window_inside_probation_is_not_scored_but_still_anchors_false_positives() -> None:
    # n = 100: probation = 15. Window (2, 5) lies wholly inside it; window (50, 59) is scored.
    alarms = np.zeros(100, dtype=bool)
    alarms[20] = True  # after the probationary window: y = (20 - 5) / (4 - 1) = 5 > 3 -> -1
    result = sc.nab_case_score(alarms, [(2, 5), (50, 59)], sc.NAB_PROFILES["standard"])
    assert result.null == -1.0 and result.perfect == 1.0  # only one window scored
    assert result.score == pytest.approx(-0.11 - 1.0)


def test_nab_perfect_and_null_detectors_normalise_to_100_and_0() -> None:
    spans = [(30, 39), (60, 69)]
    perfect = np.zeros(100, dtype=bool)
    perfect[[30, 60]] = True
    assert sc.nab_corpus_score([(perfect, spans)], sc.NAB_PROFILES["standard"]) == pytest.approx(
        100
    )
    silent = np.zeros(100, dtype=bool)
    assert sc.nab_corpus_score([(silent, spans)], sc.NAB_PROFILES["standard"]) == 0.0


def test_nab_refuses_overlapping_windows() -> None:
    with pytest.raises(ValueError, match="overlap"):
        sc.nab_case_score(
            np.zeros(50, dtype=bool), [(10, 20), (15, 25)], sc.NAB_PROFILES["standard"]
        )


def test_nab_threshold_sweep_equals_brute_force_over_every_threshold() -> None:
    rng = np.random.default_rng(7)
    series = []
    for n, spans in ((300, [(100, 129), (200, 229)]), (250, [(120, 149)]), (200, [])):
        scores = np.round(rng.random(n), 2)  # ties on purpose: NAB groups equal scores
        for a, b in spans:
            scores[a + 5 : b] += rng.random() * 0.5
        series.append((scores, spans))
    for profile in sc.NAB_PROFILES.values():
        best = sc.nab_optimise_threshold(series, profile)
        thresholds = np.unique(np.concatenate([s for s, _ in series]))
        brute = max(
            [sc.nab_corpus_score([(s >= t, sp) for s, sp in series], profile) for t in thresholds]
            + [0.0]  # no alarm at all
        )
        assert best.score == pytest.approx(brute)
        at_threshold = sc.nab_corpus_score([(s >= best.threshold, sp) for s, sp in series], profile)
        assert at_threshold == pytest.approx(best.score)


# --- HitRate ----------------------------------------------------------------------------------


def test_hit_rate_omnianomaly_definition() -> None:
    ranked = ["a", "c", "b", "d"]
    # |GT| = 2: @100 looks at the top 2 {a, c} -> 1/2; @150 at the top floor(3) = 3 -> 2/2
    assert sc.hit_rate(ranked, {"a", "b"}, 100) == 0.5
    assert sc.hit_rate(ranked, {"a", "b"}, 150) == 1.0
    # |GT| = 1: floor(1.5) = 1, so @150 equals @100
    assert sc.hit_rate(ranked, {"c"}, 150) == 0.0
    assert sc.hit_rate(ranked, {"a"}, 150) == 1.0
    # |GT| = 3: @150 looks at floor(4.5) = 4
    assert sc.hit_rate(ranked, {"b", "d", "e"}, 150) == pytest.approx(2 / 3)
    assert sc.mean_hit_rate([(ranked, {"a", "b"}), (ranked, {"c"})], 100) == pytest.approx(0.25)


def test_hit_rate_refuses_empty_ground_truth() -> None:
    with pytest.raises(ValueError):
        sc.hit_rate(["a"], set(), 100)
    with pytest.raises(ValueError):
        sc.mean_hit_rate([], 100)


def test_f1_of_zero_is_zero() -> None:
    assert sc.f1(0.0, 0.0) == 0.0
    assert math.isclose(sc.f1(0.5, 1.0), 2 / 3)
