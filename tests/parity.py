"""Parity of an accelerated segmenter with PyTorch, shared by the engine tests."""
from __future__ import annotations

import numpy as np

from edge.segment.unet import predict_probability


def largest_probability_gap(reference, accelerated) -> float:
    """Largest difference of blade probabilities over landscape, portrait and odd-sized photos."""
    rng = np.random.default_rng(1)
    worst = 0.0
    for height, width in ((48, 64), (64, 40), (37, 90)):
        photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = predict_probability(reference, photo)
        got = predict_probability(accelerated, photo)
        assert got.shape == expected.shape
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
