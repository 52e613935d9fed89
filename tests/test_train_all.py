"""`edge train all` and `edge train promote` on tiny shipped weights and a tiny wta-train folder."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from edge.cli import main
from edge.codec.bitswap.model import BitswapConfig, BitswapVAE
from edge.codec.implicit.model import ImplicitConfig, ImplicitROI
from edge.codec.implicit.weights import export_weights as export_implicit
from edge.codec.lossy.model import HyperpriorEASN, LossyConfig
from edge.codec.lossy.weights import export_weights as export_lossy
from edge.codec.lossy.weights import load_coder
from edge.errors import ConfigError
from edge.segment.unet import BUNetV2, UNetConfig, save_weights
from edge.synth import render_frame
from edge.train.all import write_candidate
from edge.train.heldout import DataFolders, load_model, score
from edge.train.promote import promote, worse_parts


def wta_folder(folder, size=(160, 128)):
    """images/ + masks/ + index.csv; envA_70 and envB_50 are in held-out scenes."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = ["image,blade_frac,view"]
    for seed, name in enumerate(["envA_01", "envA_02", "envA_03", "envA_70", "envB_50"]):
        image, mask = render_frame(size, seed=seed)
        cv2.imwrite(str(folder / "images" / f"{name}.jpg"), image[:, :, ::-1])
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask.astype(np.uint8) * 255)
        rows.append(f"{name}.jpg,{mask.mean():.3f},closeup")
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    return folder


def tiny_weights(folder):
    """Shipped-format weights of every model, tiny, as edge/weights holds them."""
    folder.mkdir()
    torch.manual_seed(0)
    export_lossy(HyperpriorEASN(LossyConfig(n=8, m=16)), folder / "hp_easn.pt", {"step": 40})
    export_implicit(ImplicitROI(ImplicitConfig(n=8, m=16, nz=8, levels=2)), folder / "implicit_roi.pt", {"step": 7})
    bitswap = BitswapVAE(BitswapConfig(width=4, depth=1, pixel_stages=7))
    torch.save({"config": bitswap.config.to_dict(), "latent_bins": 256, "step": 3,
                "state_dict": {k: v.half() for k, v in bitswap.state_dict().items()}}, folder / "bitswap.pt")
    save_weights(BUNetV2(UNetConfig(base_width=4, input_long_side=128)), folder / "bunetv2.pt")
    for name in ("hp_easn", "implicit_roi", "bitswap", "bunetv2"):
        (folder / f"{name}.md").write_text(f"# {name}\n")
    return folder


@pytest.mark.slow
def test_train_all_on_the_cpu_writes_a_candidate_and_a_summary_for_every_model(tmp_path):
    data, weights, out = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights"), tmp_path / "out"
    status = main(["train", "all", "--out", str(out), "--minutes", "1", "--device", "cpu", "--data", str(data),
                   "--weights-dir", str(weights), "--val-crops", "16"])
    summary = json.loads((out / "summary.json").read_text())
    assert status == 0, summary
    assert summary["device"] == "cpu" and summary["minutes_budget"] == 1
    for kind, start in (("lossy", 40), ("implicit", 7), ("lossless", 0), ("seg", 0)):
        entry = summary["models"][kind]
        assert entry["steps_trained"] >= 1, entry
        assert entry["shipped"]["step"] == (3 if kind == "lossless" else start)
        candidate = torch.load(entry["candidate"], weights_only=False)
        info = candidate["candidate"]
        assert info["device"] == "cpu" and info["heldout_score"] == entry["score"]
        # fp16 like shipped weights, without the optimiser
        assert all(v.dtype == torch.float16 for v in candidate["model"].values() if v.is_floating_point())
        assert "optimizer" not in candidate and "optimiser" not in candidate
        # the candidate loads as its model and scores what the summary says, on the same held-out data
        model, step, _ = load_model(kind, out / kind / "candidate.pt")
        assert step == entry["step"]
        again = score(kind, model, DataFolders.of(data), torch.device("cpu"), val_crops=16)
        assert again.value == pytest.approx(entry["score"], abs=2e-3)
        assert (out / kind / "stdout.log").exists()
        assert not (out / kind / "last.pt").exists()          # large checkpoints are not kept
    log = (out / "lossy" / "stdout.log").read_text()
    assert "started from the weights" in log and "on cpu" in log


def _lossy_candidate(tmp_path, model, name):
    """A lossy training checkpoint of ``model``, written as `edge train all` writes candidates."""
    run = tmp_path / name / "lossy"
    run.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "config": model.config.__dict__, "state": {"step": 41}}, run / "last.pt")
    write_candidate("lossy", run / "last.pt", run / "candidate.pt",
                    {"device": "cpu", "device_name": "test", "minutes": 0.1, "start_step": 40, "step": 41,
                     "steps_trained": 1, "data": "test"})
    return tmp_path / name


def _spoilt(model):
    """``model`` with its synthesis transform's last layer zeroed: it decodes grey."""
    spoilt = HyperpriorEASN(model.config)
    spoilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        spoilt.g_s.layers[-1].weight.zero_()
    return spoilt


def test_promote_refuses_a_worse_candidate_and_keeps_the_shipped_weights(tmp_path, capsys):
    data, weights = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights")
    shipped = load_model("lossy", weights / "hp_easn.pt")[0]
    out = _lossy_candidate(tmp_path, _spoilt(shipped), "worse")
    before = (weights / "hp_easn.pt").read_bytes()
    status = main(["train", "promote", str(out), "--data", str(data), "--weights-dir", str(weights),
                   "--models", "lossy", "--device", "cpu"])
    printed = capsys.readouterr()
    assert status == 1
    assert "lossy: refused: held-out score" in printed.out and "hp_easn.pt stays" in printed.out
    assert "no candidate is clearly better than the shipped weights; nothing was exported" in printed.err
    assert (weights / "hp_easn.pt").read_bytes() == before
    assert (weights / "hp_easn.md").read_text() == "# hp_easn\n"
    decision = promote(out, data, weights, ["lossy"], "cpu", dry_run=True)[0]
    assert decision["score"] > decision["shipped_score"] and not decision["shipped"]


def test_a_better_mean_does_not_hide_a_worse_part():
    """A lossy coder: the held-out numbers of HP+EASN-deep at step 9400 against the shipped step
    6600, 1 dB better on the mean over levels but 19 % more bits at level 0, where the background
    is coded. The segmentation network: better on all frames, worse on the close-ups."""
    def levels(*points):
        return {str(level): {"bpp": bpp, "psnr": psnr} for level, (bpp, psnr) in enumerate(points)}
    shipped = {"val": levels((0.241, 27.2), (0.341, 29.3), (0.725, 30.5), (1.273, 30.6))}
    candidate = {"val": levels((0.287, 27.2), (0.366, 30.0), (0.705, 31.8), (1.325, 32.0))}
    worse = worse_parts("lossy", candidate, shipped)
    assert list(worse) == ["level 0"] and worse["level 0"] == pytest.approx(0.46)
    everywhere_better = {"val": levels((0.230, 27.3), (0.330, 29.4), (0.700, 30.6), (1.250, 30.7))}
    assert worse_parts("lossy", everywhere_better, shipped) == {}
    assert worse_parts("seg", {"f1_all": 0.82, "f1_closeup": 0.90}, {"f1_all": 0.80, "f1_closeup": 0.92}) == {
        "close-ups": pytest.approx(0.02)}
    assert worse_parts("lossless", {"bpsp": 9.0}, {"bpsp": 1.0}) == {}     # one number: the mean decides


def test_promote_ships_a_clearly_better_candidate_and_records_it_in_the_card(tmp_path):
    data, weights = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights")
    good = load_model("lossy", weights / "hp_easn.pt")[0]
    export_lossy(_spoilt(good), weights / "hp_easn.pt", {"step": 40})      # the shipped ones are worse now
    out = _lossy_candidate(tmp_path, good, "better")
    decisions = promote(out, data, weights, ["lossy"], "cpu")
    assert decisions[0]["shipped"], decisions[0]["message"]
    coder = load_coder(weights / "hp_easn.pt")               # the codec loads it, with its entropy tables
    name = "g_s.layers.6.weight"
    assert torch.equal(coder.model.state_dict()[name], good.state_dict()[name].half().float())
    card = (weights / "hp_easn.md").read_text()
    assert "Retrained with `edge train all`" in card and "1 steps from the weights before (their step 40)" in card
    assert f"{decisions[0]['score']:.4f} against {decisions[0]['shipped_score']:.4f}" in card


def test_cuda_asked_for_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    data, weights = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights")
    with pytest.raises(ConfigError, match="--device cuda: torch sees no CUDA GPU"):
        from edge.train.all import train_all
        train_all(tmp_path / "out", 1, "cuda", data, ["lossy"], weights)


def test_a_packed_set_keeps_names_masks_and_the_patch_grid(tmp_path):
    from edge.segment.dataset import is_held_out, list_frames
    from edge.train.pack import pack

    data = wta_folder(tmp_path / "data", size=(400, 240))
    layout = pack(data, tmp_path / "pack", long_side=200, crop=128, crops=2)
    assert layout["count"] == 5
    folders = DataFolders.of(tmp_path / "pack")
    assert (folders.frames, folders.crops, folders.implicit_scale) == (tmp_path / "pack/frames", tmp_path / "pack/crops", 1.0)
    frames = list_frames(folders.frames)
    assert [f.name for f in frames] == ["envA_01", "envA_02", "envA_03", "envA_70", "envB_50"]
    assert all(f.view == "closeup" for f in frames)
    assert cv2.imread(str(frames[0].image_path)).shape == (120, 200, 3)
    crops = list_frames(folders.crops)
    assert len(crops) == 10 and sum(is_held_out(c.name) for c in crops) == 4
    original = cv2.imread(str(data / "images" / "envA_01.jpg"))
    for crop in crops:
        image, mask = cv2.imread(str(crop.image_path)), cv2.imread(str(crop.mask_path), cv2.IMREAD_GRAYSCALE)
        assert image.shape == (128, 128, 3) and mask.shape == (128, 128)
    # A crop is the full-resolution frame at an origin on the 16-pixel grid (JPEG-recompressed).
    first = cv2.imread(str(folders.crops / "images" / "envA_01-0.jpg")).astype(int)
    matches = [(t, l) for t in range(0, 240 - 127, 16) for l in range(0, 400 - 127, 16)
               if np.abs(original[t:t + 128, l:l + 128].astype(int) - first).mean() < 3]
    assert len(matches) == 1
    # The first crop of a frame with a blade holds its outline: blade and background both.
    mask = cv2.imread(str(folders.crops / "masks" / "envA_01-0.png"), cv2.IMREAD_GRAYSCALE)
    assert 0 < (mask > 0).mean() < 1


def test_promote_ships_a_better_segmentation_network_with_the_shipped_thresholds(tmp_path):
    from edge.segment.unet import load_weights

    data, weights = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights")
    torch.manual_seed(3)
    good = BUNetV2(UNetConfig(base_width=4, input_long_side=128, threshold=0.4, min_confidence=0.2,
                              use_forest=False))
    bad = BUNetV2(good.config)
    with torch.no_grad():           # the last layer's bias makes every pixel blade (good) or background (bad)
        good.head.bias.fill_(50.0)
        bad.head.bias.fill_(-50.0)
    save_weights(bad, weights / "bunetv2.pt")
    run = tmp_path / "out" / "seg"
    run.mkdir(parents=True)
    torch.save({"model": good.state_dict(), "step": 12, "best": {},
                "config": {"base_width": 4, "long_side": 128, "arch": "bunetv2"}}, run / "last.pt")
    write_candidate("seg", run / "last.pt", run / "candidate.pt", {"device": "cpu", "steps_trained": 12})
    decisions = promote(tmp_path / "out", data, weights, ["seg"], "cpu")
    assert decisions[0]["shipped"], decisions[0]["message"]
    assert decisions[0]["shipped_score"] == 0 and decisions[0]["score"] < -0.3     # minus F1
    shipped = load_weights(weights / "bunetv2.pt")
    assert (shipped.config.threshold, shipped.config.min_confidence, shipped.config.use_forest) == (0.4, 0.2, False)
    assert "Retrained with `edge train all`" in (weights / "bunetv2.md").read_text()


def test_a_trainer_past_its_time_is_interrupted_even_with_sigint_ignored(tmp_path):
    """A run started from a background shell inherits SIGINT ignored; a trainer still running
    past its time and grace (here: given 100 minutes where it has 21 seconds) must still stop with
    its checkpoint, not be killed."""
    import signal

    from edge.train.all import _run_trainers, trainer_arguments

    data, weights = wta_folder(tmp_path / "data"), tiny_weights(tmp_path / "weights")
    run = tmp_path / "seg"
    run.mkdir()
    argv = trainer_arguments("seg", torch.device("cpu"), DataFolders.of(data), run, weights / "bunetv2.pt",
                             minutes=100, threads=1, val_crops=16)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = _run_trainers([("seg", argv, 1.0, run)], parallel=1, grace=20.0)["seg"]
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result["interrupted"] and result["returncode"] == 130, result    # edge's status for an interrupt
    assert torch.load(run / "last.pt", weights_only=False)["step"] >= 1
