"""The confidence guard: mean U-Net probability inside the mask; an unsure photo is sent whole.

Models built to be sure or unsure: a tiny BU-Netv2 whose head outputs a constant logit (0 gives
probability 0.5 everywhere: a mask over the whole photo that the network is not sure of; 6 gives
0.9975). The daemon test runs the real daemon, broker and decoder with such weights.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.daemon_helpers import arrivals, edge_config, offshore_config, wait_for, write_photo
from edge.daemon.journal import Journal
from edge.daemon.pipeline import EdgeDaemon
from edge.offshore.subscriber import Subscriber
from edge.registry import MODELS
from edge.segment.confidence import guard_report, mask_confidence
from edge.segment.pipeline import SegmentSettings, load_segmenter, segment_surface
from edge.segment.unet import BUNetV2, UNetConfig, save_weights

torch.set_num_threads(1)


def constant_model(logit: float, min_confidence: float) -> BUNetV2:
    model = BUNetV2(UNetConfig(base_width=4, input_long_side=64, min_confidence=min_confidence))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(logit)
    return model.eval()


def test_confidence_is_the_mean_probability_inside_the_mask():
    probability = np.array([[0.9, 0.7, 0.2], [0.1, 0.5, 0.0]], np.float32)
    assert mask_confidence(probability, 0.5) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    assert mask_confidence(np.zeros((4, 4), np.float32), 0.5) == 1.0   # no mask: nothing claimed


def test_guard_report_counts_bad_masks_caught_and_good_ones_sent():
    frames = [{"confidence": 0.95, "recall": 0.97}, {"confidence": 0.62, "recall": 0.40},
              {"confidence": 0.70, "recall": 0.90}, {"confidence": 0.55, "recall": 0.95}]
    low, high = guard_report(frames, [0.6, 0.75])
    assert (low["unsure"], low["bad_caught"], low["bad"], low["good_sent"], low["good"]) == (1, 0, 1, 1, 3)
    assert (high["unsure"], high["bad_caught"], high["good_sent"]) == (3, 1, 2)


def test_the_pipeline_calls_a_photo_unsure_by_the_threshold_stored_with_the_weights(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    for logit, expected in ((0.0, True), (6.0, False)):
        path = tmp_path / f"logit{logit}.pt"
        save_weights(constant_model(logit, min_confidence=0.8), path)
        result = segment_surface([photo], load_segmenter(path))
        assert result.masks[0].all()                       # both claim the whole photo ...
        assert result.unsure == [expected], (logit, result.confidence)   # ... one of them unsure
    unset = segment_surface([photo], constant_model(0.0, min_confidence=0.0))
    assert unset.unsure == [False]                         # threshold 0: the guard is off
    forced = segment_surface([photo], constant_model(6.0, 0.0), SegmentSettings(min_confidence=0.999))
    assert forced.unsure == [True]                         # settings override the weights' threshold


@pytest.mark.broker
@pytest.mark.parametrize("logit, guard, sent_whole", [(0.0, {}, True), (6.0, {}, False),
                                                     (0.0, {"min_confidence": 0}, False)])   # guard off
def test_the_daemon_sends_the_source_file_of_a_photo_the_model_is_unsure_of(tmp_path, broker, services, caplog,
                                                                             logit, guard, sent_whole):
    weights = tmp_path / "unet.pt"
    save_weights(constant_model(logit, min_confidence=0.8), weights)
    edge = edge_config(tmp_path, broker.port, coding={"mode": "roi"},
                       segmentation={"mode": "model", "weights": str(weights), **guard})
    offshore = offshore_config(tmp_path, broker.port)
    services(Subscriber(offshore))
    daemon = services(EdgeDaemon(edge))
    photo = write_photo(edge.watch.folders[0], 0)
    source = photo.read_bytes()
    wait_for(lambda: daemon.journal.counts().get("acknowledged") == 1, 60, "the photo acknowledged")
    journal = Journal(edge.journal_path)
    try:
        (record,) = journal.all()
    finally:
        journal.close()
    assert bool(record.sent_source) == sent_whole
    assert ("unsure of this photo's mask" in caplog.text) == sent_whole
    (arrival,) = arrivals(offshore.output.folder)
    image = offshore.output.folder / arrival["image"]
    sidecar = json.loads(image.with_suffix(".json").read_text())
    if sent_whole:                                   # the camera's own file arrives
        assert (image.parent / sidecar["source_file"]).read_bytes() == source
    else:
        assert sidecar["source_file"] is None


@pytest.mark.parametrize("name", [name for name, spec in MODELS.items() if spec.kind == "segmentation"])
def test_every_shipped_segmenter_has_its_guard(name):
    """The thresholds chosen on the held-out scenes (model cards) travel with the weights files."""
    model = load_segmenter(MODELS[name].weights_path)
    assert 0.5 <= model.config.min_confidence < 1
