"""The BU-Netv2+P pipeline: which threshold tau_BU it applies, and its steps' outputs."""
import numpy as np
import torch

from edge.segment.pipeline import STEPS, SegmentSettings, postprocess, segment_surface, unet_probabilities
from edge.segment.unet import BUNetV2, UNetConfig

torch.set_num_threads(1)


def photos(count=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 72, 3), dtype=np.uint8) for _ in range(count)]


def model_with_threshold(threshold):
    torch.manual_seed(0)
    return BUNetV2(UNetConfig(base_width=4, input_long_side=64, threshold=threshold)).eval()


def test_pipeline_uses_the_threshold_stored_with_the_weights():
    images = photos()
    everything = segment_surface(images, model_with_threshold(0.0), SegmentSettings(use_forest=False), keep_steps=True)
    nothing = segment_surface(images, model_with_threshold(1.01), SegmentSettings(use_forest=False), keep_steps=True)
    assert all(m.all() for m in everything.steps["unet"])
    assert not any(m.any() for m in nothing.steps["unet"])
    # An explicit tau_BU overrides the stored one.
    explicit = segment_surface(images, model_with_threshold(0.0), SegmentSettings(tau_bu=1.01, use_forest=False),
                               keep_steps=True)
    assert not any(m.any() for m in explicit.steps["unet"])


def test_postprocess_of_cached_probabilities_matches_segment_surface():
    images, model = photos(), model_with_threshold(0.5)
    settings = SegmentSettings(tau_bu=0.5)
    direct = segment_surface(images, model, settings, keep_steps=True)
    cached = postprocess(images, unet_probabilities(images, model, settings), 0.5, settings, keep_steps=True)
    for step in STEPS:
        for a, b in zip(direct.steps[step], cached.steps[step]):
            assert a.shape == (40, 72) and np.array_equal(a, b)
