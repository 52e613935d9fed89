import numpy as np
import pytest

from edge.segment.metrics import acceptance_curve, frame_scores, summarise


def test_frame_scores_from_counts():
    truth = np.zeros((10, 10), bool)
    truth[:, :5] = True                 # 50 blade pixels
    prediction = np.zeros((10, 10), bool)
    prediction[:, 1:7] = True           # tp 40, fp 20, fn 10, tn 30
    scores = frame_scores(prediction, truth)
    tp, fp, fn, tn = 40, 20, 10, 30
    assert scores.accuracy == pytest.approx((tp + tn) / 100)
    assert scores.precision == pytest.approx(tp / (tp + fp))
    assert scores.recall == pytest.approx(tp / (tp + fn))
    assert scores.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert scores.miou == pytest.approx((tp / (tp + fp + fn) + tn / (tn + fp + fn)) / 2)


def test_frames_without_blade_are_left_out_of_the_summary():
    truth = np.zeros((4, 4), bool)
    truth[0, 0] = True
    perfect = frame_scores(truth, truth)
    empty_frame = frame_scores(np.ones((4, 4), bool), np.zeros((4, 4), bool))
    assert not empty_frame.has_blade and empty_frame.f1 == 0
    assert summarise([perfect, empty_frame])["f1"] == 1.0


def test_acceptance_curve_fractions_and_area():
    values = [0.2, 0.6, 0.9, 1.0]
    thresholds, ratios, area = acceptance_curve(values)
    assert ratios[0] == 1.0 and ratios[-1] == 0.25
    assert ratios[np.searchsorted(thresholds, 0.5)] == 0.75
    assert np.all(np.diff(ratios) <= 0)
    assert area == pytest.approx(np.mean(values), abs=0.01)
