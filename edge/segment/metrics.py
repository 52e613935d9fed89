"""Segmentation metrics: per-image accuracy, precision, recall, F1, IoU, and acceptance ratios.

Conventions for frames without blade in the ground truth: recall is 1 (nothing to miss) and F1
and blade IoU are 1 only if nothing was predicted either. Tables average over the frames that
contain blade (:func:`summarise`), as the metrics describe blade coverage.

Acceptance-ratio curve of a metric: for each threshold t in [0, 1], the fraction of frames
whose metric is at least t. Its area (trapezoid rule over t) summarises the whole curve; it is
close to the mean of the metric.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "miou")


@dataclass(frozen=True)
class FrameScores:
    accuracy: float
    precision: float
    recall: float
    f1: float
    iou_blade: float
    iou_background: float
    has_blade: bool

    @property
    def miou(self) -> float:
        return (self.iou_blade + self.iou_background) / 2

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "miou": self.miou}


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return empty if denominator == 0 else float(numerator / denominator)


def frame_scores(prediction: np.ndarray, truth: np.ndarray) -> FrameScores:
    """Scores of one predicted mask against its ground truth (both bool, same shape)."""
    if prediction.shape != truth.shape:
        raise ValueError(f"mask shapes differ: prediction {prediction.shape}, truth {truth.shape}")
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(prediction & truth))
    fp = int(np.count_nonzero(prediction & ~truth))
    fn = int(np.count_nonzero(~prediction & truth))
    tn = truth.size - tp - fp - fn
    nothing = tp + fp + fn == 0
    return FrameScores(
        accuracy=(tp + tn) / truth.size,
        precision=_ratio(tp, tp + fp, 1.0),
        recall=_ratio(tp, tp + fn, 1.0),
        f1=1.0 if nothing else 2 * tp / (2 * tp + fp + fn),
        iou_blade=1.0 if nothing else tp / (tp + fp + fn),
        iou_background=_ratio(tn, tn + fp + fn, 1.0),
        has_blade=tp + fn > 0,
    )


def summarise(scores: list[FrameScores]) -> dict[str, float]:
    """Mean of each metric over the frames with blade (all frames when none has blade)."""
    chosen = [s for s in scores if s.has_blade] or scores
    if not chosen:
        return {name: float("nan") for name in METRIC_NAMES}
    return {name: float(np.mean([getattr(s, name) for s in chosen])) for name in METRIC_NAMES}


def acceptance_curve(values: list[float], thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(thresholds, fraction of values >= each threshold, area under the curve)."""
    if thresholds is None:
        thresholds = np.linspace(0.0, 1.0, 101)
    values_array = np.asarray(values, dtype=np.float64)
    if values_array.size == 0:
        ratios = np.zeros_like(thresholds)
    else:
        ratios = (values_array[None, :] >= thresholds[:, None] - 1e-12).mean(axis=1)
    area = float(np.sum((ratios[1:] + ratios[:-1]) / 2 * np.diff(thresholds)))
    return thresholds, ratios, area
