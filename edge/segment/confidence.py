"""How sure the U-Net is of a photo's mask, and the guard that calls a photo unsure.

The blade fraction alone (the daemon's ``min_blade_fraction``) catches a blade missed
entirely, not a mask that is partly wrong: a tower taken for blade, half a blade in shade
missed. Those masks come from probabilities near the threshold: a network that has seen such
scenes puts its blade pixels near 1. The *confidence* of a photo is the mean flip-averaged U-Net
probability over the pixels of its U-Net mask (probability >= tau_BU); a photo whose confidence
is below ``min_confidence`` is *unsure*, and the daemon sends its source file rather than code
it by a mask that may be wrong.

The threshold belongs to the weights (the probabilities of two networks are not on the same
scale): it is stored with them like tau_BU and chosen on held-out wta-train scenes with
``edge eval seg --guard-report`` (:func:`guard_report`).
"""
from __future__ import annotations

import numpy as np


def mask_confidence(probability: np.ndarray, tau_bu: float) -> float:
    """Mean probability over the pixels at or above ``tau_bu``; 1.0 when there are none
    (an empty mask claims nothing: the blade-fraction guard judges it)."""
    inside = probability[probability >= tau_bu]
    return float(inside.mean()) if inside.size else 1.0


def is_unsure(confidence: float, min_confidence: float) -> bool:
    return confidence < min_confidence


def guard_report(frames: list[dict], thresholds: list[float], bad_recall: float = 0.8) -> list[dict]:
    """For each candidate ``min_confidence``: how many frames it sends as source files, and how
    many of the *bad* ones (final-mask recall below ``bad_recall``: blade that would be coded as
    background) it catches.

    ``frames`` hold ``confidence`` and ``recall`` (and ``view``) of each held-out frame with blade.
    """
    rows = []
    bad = [f for f in frames if f["recall"] < bad_recall]
    good = [f for f in frames if f["recall"] >= bad_recall]
    for threshold in thresholds:
        flagged = [f for f in frames if is_unsure(f["confidence"], threshold)]
        rows.append({
            "min_confidence": threshold,
            "unsure": len(flagged), "frames": len(frames),
            "bad_caught": sum(is_unsure(f["confidence"], threshold) for f in bad), "bad": len(bad),
            "good_sent": sum(is_unsure(f["confidence"], threshold) for f in good), "good": len(good),
        })
    return rows


def format_guard_report(frames: list[dict], rows: list[dict]) -> str:
    lines = ["| frame | view | confidence | recall | F1 |", "|---|---|---|---|---|"]
    for f in sorted(frames, key=lambda f: f["confidence"]):
        lines.append(f"| {f['name']} | {f['view']} | {f['confidence']:.3f} | {f['recall']:.3f} | {f['f1']:.3f} |")
    lines += ["", "| min_confidence | unsure frames | bad masks caught | good masks sent as source |",
              "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['min_confidence']:.2f} | {r['unsure']} / {r['frames']} | {r['bad_caught']} / {r['bad']} "
                     f"| {r['good_sent']} / {r['good']} |")
    return "\n".join(lines)
