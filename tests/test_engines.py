"""edge.runtime: ONNX export, ONNX Runtime vs PyTorch, backend selection, `edge engines build`.

Small random models (a tiny lossy coder, a 4-wide BU-Netv2) unless the shipped weights exist.
TensorRT tests run only where ``tensorrt`` imports (a Jetson); elsewhere they are skipped.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import io

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from edge.cli import main
from edge.codec.container import decode_bundle, encode_bundle
from edge.codec.metadata import source_metadata_from_bytes
from edge.codec.photo import Coders, CodingSettings, compress_pixels, decompress_bundle
from edge.errors import ModelError
from edge.runtime.artifacts import meta_path, onnx_path
from edge.runtime.backends import Backend, OnnxRuntimeBackend
from edge.runtime.networks import lossy_group, segmentation_group
from edge.runtime.onnx_export import export_group
from edge.runtime.select import RuntimeSettings, accelerate_coder, accelerate_segmenter, select_backend
from edge.segment.unet import BUNetV2, UNetConfig, predict_probability, save_weights
from tests.parity import largest_probability_gap
from tests.tiny_models import tiny_lossy_coder

torch.set_num_threads(1)
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_TENSORRT = "TensorRT is not installed here (no GPU): the TensorRT path could not be run on this machine"


def tiny_unet(seed: int = 0) -> BUNetV2:
    torch.manual_seed(seed)
    model = BUNetV2(UNetConfig(base_width=4, input_long_side=64)).eval()
    for module in model.modules():      # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def textured_patches(count: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """Smooth gradients, edges and noise: latents that are not all zero."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    patches = []
    for _ in range(count):
        base = 128 + 100 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy + rng.uniform(0, 6))
        edge = (xx + yy > rng.uniform(0.5, 1.5)) * rng.uniform(-60, 60)
        channels = [base + edge + rng.normal(0, 12, base.shape) + rng.uniform(-30, 30) for _ in range(3)]
        patches.append(np.clip(np.stack(channels), 0, 255).astype(np.uint8))
    return np.stack(patches)


def ort_settings(folder) -> RuntimeSettings:
    return RuntimeSettings(backend="onnxruntime", engines_folder=folder, threads=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny lossy coder (patch 256) and tiny U-Net, exported once for the module."""
    folder = tmp_path_factory.mktemp("engines")
    coder = tiny_lossy_coder(tmp_path_factory.mktemp("weights"))
    unet = tiny_unet()
    export_group(lossy_group(coder), folder)
    export_group(segmentation_group(unet), folder)
    return folder, coder, unet


def test_exported_graphs_pass_the_checker_with_dynamic_batch(exported):
    folder, coder, unet = exported
    files = sorted(folder.glob("*.onnx"))
    assert sorted(f.name.split(".")[1] for f in files) == ["g_a", "g_s", "h_a", "unet"]
    for path in files:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        (graph_input,) = model.graph.input
        assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch", path.name
        assert meta_path(path).is_file()


def test_onnx_runtime_segmentation_probabilities_match_pytorch(exported):
    folder, _, unet = exported
    accelerated = accelerate_segmenter(unet, ort_settings(folder))
    assert accelerated.selection.backend.kind == "onnxruntime"
    worst = largest_probability_gap(unet, accelerated)
    assert worst < 1e-4, worst


def test_onnx_runtime_synthesis_matches_pytorch(exported):
    folder, coder, _ = exported
    latents = coder.analyse(textured_patches(3), 5)
    assert np.count_nonzero(latents.y_hat) > 0
    backend = accelerate_coder(coder, ort_settings(folder)).backend
    try:
        _, inv_gain = coder.model.gains(5)
        y = torch.from_numpy(latents.y_hat).float() * inv_gain
        with torch.no_grad():
            expected = coder.model.g_s(y)
        assert float((backend.run("g_s", y) - expected).abs().max()) < 1e-3
        ort_pixels = coder.synthesize(latents.y_hat, 5)
    finally:
        coder.use_backend(None)
    torch_pixels = coder.synthesize(latents.y_hat, 5)
    assert np.abs(ort_pixels.astype(int) - torch_pixels.astype(int)).max() <= 1


def _lossy_bundle(coder, image: np.ndarray):
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    metadata = source_metadata_from_bytes(png.getvalue(), "patches.png")
    result = compress_pixels(image, metadata, CodingSettings(mode="lossy", quality=5), Coders(lossy=coder))
    return decode_bundle(encode_bundle(result.bundle))


def test_bundle_from_onnx_runtime_analysis_decodes_to_the_transmitted_latents(exported, tmp_path):
    folder, coder, _ = exported
    image = np.concatenate(list(textured_patches(4, seed=2).transpose(0, 2, 3, 1)), axis=1)   # 256 x 1024
    patches = textured_patches(4, seed=2)
    accelerate_coder(coder, ort_settings(folder))
    try:
        assert coder.backend.kind == "onnxruntime"
        sent = coder.analyse(patches, 5)
        bundle = _lossy_bundle(coder, image)
    finally:
        coder.use_backend(None)
    # A separate decoder: the same weights file in plain PyTorch.
    decoder = tiny_lossy_coder(tmp_path)
    assert decoder.backend is None and decoder.weights_sha256 == coder.weights_sha256
    received = decoder.decode_latents(bundle.region("whole").coded)
    np.testing.assert_array_equal(received, sent.y_hat)
    photo = decompress_bundle(bundle, Coders(lossy=decoder))
    expected = np.concatenate(list(decoder.synthesize(sent.y_hat, 5).transpose(0, 2, 3, 1)), axis=1)
    np.testing.assert_array_equal(photo.image, expected)
    # Rounding y * gain can land on the other side of .5 on another backend: count how often.
    reference = coder.analyse(patches, 5)
    differing = int((reference.y_hat != sent.y_hat).sum())
    print(f"\nlatents differing between ONNX Runtime and PyTorch analysis: {differing} of {sent.y_hat.size}"
          f" (y), {int((reference.z_hat != sent.z_hat).sum())} of {sent.z_hat.size} (z)")
    assert differing <= sent.y_hat.size // 1000


def test_torch_encoded_latents_decode_with_onnx_runtime_synthesis(exported):
    folder, coder, _ = exported
    patches = textured_patches(3, seed=3)
    coded = coder.compress(patches, 4)                              # PyTorch encoder
    torch_pixels = coder.decompress(coded)
    accelerate_coder(coder, ort_settings(folder))
    try:
        ort_pixels = coder.decompress(coded)                        # ONNX Runtime synthesis
    finally:
        coder.use_backend(None)
    assert np.abs(ort_pixels.astype(int) - torch_pixels.astype(int)).max() <= 1


class RecordingBackend(OnnxRuntimeBackend):
    """The real ONNX Runtime backend, noting which networks it is asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = set()

    def _run(self, name, x):
        self.asked.add(name)
        return super()._run(name, x)


def test_only_analysis_and_synthesis_leave_the_canonical_path(exported):
    folder, coder, _ = exported
    group = lossy_group(coder)
    paths = {name: onnx_path(folder, group, network) for name, network in group.networks.items()}
    backend = RecordingBackend(paths, threads=1)
    coder.use_backend(backend)
    try:
        coded = coder.compress(textured_patches(2, seed=4), 2)
        coder.decompress(coded)
    finally:
        coder.use_backend(None)
    assert backend.asked == {"g_a", "h_a", "g_s"}
    with pytest.raises(ModelError, match="may not run on an accelerated backend"):
        Backend(["g_a", "h_s"])


def test_auto_selection_prefers_valid_onnx_and_refuses_stale_or_damaged_files(exported, tmp_path):
    folder, coder, unet = exported
    auto = RuntimeSettings(engines_folder=folder, threads=1)
    assert select_backend(segmentation_group(unet), auto).backend.kind == "onnxruntime"
    selection = select_backend(segmentation_group(unet), dataclasses.replace(auto, engines_folder=tmp_path))
    assert selection.backend.kind == "torch"
    assert any(note.startswith("onnxruntime:") for note in selection.passed_over)
    if not HAVE_TENSORRT:
        assert any(note.startswith("tensorrt:") for note in selection.passed_over)
    # Other weights: the file names differ, so the old export is not used.
    other = tiny_unet(seed=7)
    assert select_backend(segmentation_group(other), auto).backend.kind == "torch"
    # A damaged file is refused (its SHA-256 no longer matches the sidecar).
    export_group(segmentation_group(other), tmp_path)
    (path,) = tmp_path.glob("*.onnx")
    with open(path, "ab") as handle:
        handle.write(b"\0")
    damaged = select_backend(segmentation_group(other), dataclasses.replace(auto, engines_folder=tmp_path))
    assert damaged.backend.kind == "torch" and "SHA-256" in " ".join(damaged.passed_over)


def test_forced_backends_fail_loudly_when_unusable(tmp_path):
    unet = tiny_unet()
    with pytest.raises(ModelError, match="runtime.backend is onnxruntime"):
        select_backend(segmentation_group(unet), ort_settings(tmp_path))
    if not HAVE_TENSORRT:
        with pytest.raises(ModelError, match="runtime.backend is tensorrt"):
            select_backend(segmentation_group(unet), RuntimeSettings(backend="tensorrt", engines_folder=tmp_path))
    assert select_backend(segmentation_group(unet), RuntimeSettings(backend="torch")).backend.kind == "torch"
    with pytest.raises(ModelError, match="unknown runtime backend"):
        RuntimeSettings(backend="tpu")


def test_runtime_section_of_the_edge_config(tmp_path):
    from edge.config import load_edge_config
    from edge.errors import ConfigError
    text = ("device: d1\nwatch: {folders: [cards]}\nspool: {folder: spool}\nmqtt: {client_id: c1}\n"
            "runtime: {backend: onnxruntime, precision: fp32, engines_folder: eng, threads: 1}\n")
    (tmp_path / "edge.yaml").write_text(text)
    settings = RuntimeSettings.of(load_edge_config(tmp_path / "edge.yaml").runtime)
    assert settings.backend == "onnxruntime" and settings.precision == "fp32"
    assert settings.folder == tmp_path / "eng"
    (tmp_path / "bad.yaml").write_text(text.replace("backend: onnxruntime", "backend: tpu"))
    with pytest.raises(ConfigError, match="runtime.backend"):
        load_edge_config(tmp_path / "bad.yaml")


def test_engines_build_command_exports_once_and_says_what_it_could_not_do(tmp_path, capsys):
    from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
    from edge.codec.lossy.weights import export_weights
    torch.manual_seed(1)
    export_weights(HyperpriorEASN(LossyConfig(n=16, m=24)), tmp_path / "lossy.pt")
    save_weights(tiny_unet(), tmp_path / "unet.pt")
    argv = ["engines", "build", "--out", str(tmp_path / "out"), "--precision", "fp32",
            "--lossy-weights", str(tmp_path / "lossy.pt"), "--segment-weights", str(tmp_path / "unet.pt")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.count("exported") == 4
    assert len(list((tmp_path / "out").glob("*.onnx"))) == 4
    if not HAVE_TENSORRT:
        assert "TensorRT engines not built: TensorRT is not installed" in first
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert second.count("up to date") >= 4 and "exported" not in second


# -- the shipped models (when their weights exist) --------------------------------------------

def _shipped(name: str):
    from edge.registry import MODELS, load_model
    if name not in MODELS or not MODELS[name].weights_path.is_file():
        pytest.skip(f"shipped weights of {name} are not in edge/weights/ yet")
    return load_model(name)


@pytest.mark.slow
def test_shipped_lossy_coder_on_onnx_runtime(tmp_path):
    coder = _shipped("hp-easn")
    export_group(lossy_group(coder), tmp_path)
    patches = textured_patches(2, seed=5)
    reference = coder.analyse(patches, 3)
    accelerate_coder(coder, ort_settings(tmp_path))
    try:
        coded = coder.compress(patches, 3)
        sent = coder.analyse(patches, 3)
        ort_pixels = coder.synthesize(reference.y_hat, 3)
    finally:
        coder.use_backend(None)
    np.testing.assert_array_equal(coder.decode_latents(coded), sent.y_hat)
    print(f"\nshipped hp-easn: {int((reference.y_hat != sent.y_hat).sum())} of {sent.y_hat.size} latents differ")
    assert np.abs(ort_pixels.astype(int) - coder.synthesize(reference.y_hat, 3).astype(int)).max() <= 1


@pytest.mark.slow
def test_shipped_unet_on_onnx_runtime(tmp_path):
    unet = _shipped("bunetv2")
    export_group(segmentation_group(unet), tmp_path)
    photo = np.random.default_rng(6).integers(0, 256, (600, 900, 3), dtype=np.uint8)
    accelerated = accelerate_segmenter(unet, ort_settings(tmp_path))
    assert np.abs(predict_probability(accelerated, photo) - predict_probability(unet, photo)).max() < 1e-4


# -- TensorRT (a Jetson or another CUDA machine with TensorRT) -------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TENSORRT, reason=NO_TENSORRT)
def test_tensorrt_engines_build_select_and_code(tmp_path):
    from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
    from edge.codec.lossy.weights import export_weights, load_coder
    from edge.runtime.build import build_engines
    from edge.runtime.tensorrt import current_target
    torch.manual_seed(0)
    weights = tmp_path / "lossy.pt"
    export_weights(HyperpriorEASN(LossyConfig(n=16, m=24)), weights)
    save_weights(tiny_unet(), tmp_path / "unet.pt")
    report = build_engines(tmp_path / "out", "fp32", "onnx-trt", lossy_weights=weights,
                           segment_weights=tmp_path / "unet.pt")
    assert not report.tensorrt and not report.failed
    built = [line for line in report.lines if line.status == "built"]
    assert len(built) == 4
    target = current_target("fp32")
    assert all(target.tag in line.artifact for line in built)
    again = build_engines(tmp_path / "out", "fp32", "onnx-trt", lossy_weights=weights,
                          segment_weights=tmp_path / "unet.pt")
    assert [line.status for line in again.lines].count("up to date") == 8
    # The build names the model hp-easn; select against the same name.
    encoder = load_coder(weights, "hp-easn")
    selection = accelerate_coder(encoder, RuntimeSettings(engines_folder=tmp_path / "out", precision="fp32"))
    assert selection.backend.kind == "tensorrt"
    patches = textured_patches(3, seed=8)
    sent = encoder.analyse(patches, 5)
    coded = encoder.compress(patches, 5)
    decoder = load_coder(weights, "hp-easn")
    np.testing.assert_array_equal(decoder.decode_latents(coded), sent.y_hat)
    torch_pixels = decoder.synthesize(sent.y_hat, 5)
    assert np.abs(encoder.synthesize(sent.y_hat, 5).astype(int) - torch_pixels.astype(int)).max() <= 2


def test_long_builds_keep_extending_the_systemd_timeout(tmp_path):
    import socket
    import time

    from edge.service.health import Notifier
    from edge.runtime.tensorrt import systemd_keepalive
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(2.0)
        notifier = Notifier({"NOTIFY_SOCKET": address})
        with systemd_keepalive(notifier, every_s=0.05, extend_s=10):
            time.sleep(0.3)                                  # stands for a long engine build
        messages = []
        server.settimeout(0.2)
        try:
            while True:
                messages.append(server.recv(256).decode())
        except socket.timeout:
            pass
        notifier.close()
    assert len(messages) >= 3 and set(messages) == {"EXTEND_TIMEOUT_USEC=10000000"}
