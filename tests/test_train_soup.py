"""`edge train soup`: the mean of two real training runs' weights, exported and used to segment;
and the slimmed checkpoints a GPU lease returns (`python -m edge.train.slim`) soup alike."""
import shutil
import subprocess
import sys

import pytest
import torch

from edge.cli import main
from edge.errors import InputError
from edge.segment.unet import load_weights
from test_segment_cli import TINY_TRAIN, tiny_data  # noqa: F401  (fixture)

torch.set_num_threads(1)


@pytest.mark.slow
def test_soup_of_two_runs_is_the_mean_of_their_weights_and_exports(tiny_data, tmp_path):  # noqa: F811
    runs = []
    for seed in (1, 2):
        run = tmp_path / f"run{seed}"
        assert main(["train", "seg", "--data", str(tiny_data), "--ckpt-dir", str(run), "--steps", "2",
                     "--seed", str(seed), *TINY_TRAIN]) == 0
        runs.append(run / "last.pt")
    soup_path = tmp_path / "soup" / "last.pt"
    assert main(["train", "soup", str(soup_path), *map(str, runs)]) == 0

    first, second = (torch.load(path, weights_only=False)["model"] for path in runs)
    soup = torch.load(soup_path, weights_only=False)
    assert "optimiser" not in soup and soup["soup_of"] == [str(path) for path in runs]
    floats = [key for key, value in first.items() if value.is_floating_point()]
    assert any(not torch.equal(first[key], second[key]) for key in floats)  # two different runs
    for key in floats:
        assert torch.allclose(soup["model"][key], (first[key] + second[key]) / 2, atol=1e-7), key

    weights = tmp_path / "soup.pt"
    assert main(["train", "seg", "--ckpt-dir", str(soup_path.parent), "--export", str(weights),
                 "--export-from", "last", "--tau", "0.45"]) == 0
    exported = load_weights(weights)
    assert exported.config.threshold == 0.45
    conv = next(key for key in floats if first[key].dim() == 4)
    assert torch.allclose(exported.state_dict()[conv], soup["model"][conv], atol=1e-2)
    masks = tmp_path / "masks"
    assert main(["segment", str(tiny_data / "images" / "envA_01.png"), "--weights", str(weights),
                 "--out", str(masks)]) == 0
    assert list(masks.iterdir())

    # Slimmed as scripts/gpu_burst.sh returns them: fp16 weights, no optimiser; their soup is the
    # full runs' soup within fp16 rounding.
    slimmed = []
    for path in runs:
        copy = tmp_path / "slim" / path.parent.name / "last.pt"
        copy.parent.mkdir(parents=True)
        shutil.copy(path, copy)
        slimmed.append(copy)
    subprocess.run([sys.executable, "-m", "edge.train.slim", *map(str, slimmed)], check=True)
    for full, slim in zip(runs, slimmed):
        state = torch.load(slim, weights_only=False)
        assert "optimiser" not in state and state["step"] == 2 and slim.stat().st_size < full.stat().st_size / 2
        assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    slim_soup = tmp_path / "slim-soup" / "last.pt"
    assert main(["train", "soup", str(slim_soup), *map(str, slimmed)]) == 0
    mean = torch.load(slim_soup, weights_only=False)["model"]
    for key in floats:
        assert torch.allclose(mean[key].float(), soup["model"][key], atol=2e-3, rtol=2e-3), key


def _checkpoint(path, model, arch="bunetv2"):
    torch.save({"model": model, "config": {"arch": arch}, "step": 3, "best": {}}, path)
    return path


def test_soup_refuses_networks_that_differ_and_names_the_file(tmp_path, capsys):
    base = {"conv.weight": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(5)}
    a = _checkpoint(tmp_path / "a.pt", base)
    cases = {
        "wider.pt": ({"conv.weight": torch.zeros(4, 3), "bn.num_batches_tracked": torch.tensor(5)}, "bunetv2",
                     "'conv.weight' has shape (4, 3)"),
        "other-keys.pt": ({"head.weight": torch.zeros(2, 3), "bn.num_batches_tracked": torch.tensor(5)}, "bunetv2",
                          "do not match"),
        "other-arch.pt": (base, "bunetv2-lite0", "architecture 'bunetv2-lite0'"),
    }
    for name, (model, arch, message) in cases.items():
        other = _checkpoint(tmp_path / name, model, arch)
        out = tmp_path / "soup.pt"
        assert main(["train", "soup", str(out), str(a), str(other)]) == 1
        err = capsys.readouterr().err
        assert name in err and message in err, err
        assert not out.exists()
    shipped = tmp_path / "shipped.pt"
    torch.save({"state_dict": base}, shipped)
    assert main(["train", "soup", str(tmp_path / "soup.pt"), str(a), str(shipped)]) == 1
    assert "neither a training checkpoint" in capsys.readouterr().err
    assert main(["train", "soup", str(tmp_path / "soup.pt"), str(a)]) == 1
    assert "at least two" in capsys.readouterr().err


def test_soup_mean_keeps_counters_and_dtype(tmp_path):
    from edge.train.soup import make_soup
    a = _checkpoint(tmp_path / "a.pt", {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(7)})
    b = _checkpoint(tmp_path / "b.pt", {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)})
    soup = make_soup([a, b])
    assert torch.equal(soup["model"]["w"], torch.tensor([2.0, 4.0])) and soup["model"]["w"].dtype == torch.float32
    assert int(soup["model"]["n"]) == 7 and soup["step"] == 3


def test_shipped_weights_file_is_a_member_and_a_repeated_member_weighs_twice(tmp_path):
    from edge.train.soup import make_soup
    run = tmp_path / "run.pt"
    torch.save({"model": {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(7)}, "step": 3, "best": {},
                "config": {"arch": "bunetv2-lite0", "lr": 1e-4}}, run)
    shipped = tmp_path / "shipped.pt"   # the layout of an fp16 export in edge/weights/
    torch.save({"arch": "bunetv2-lite0", "config": None,
                "state_dict": {"w": torch.tensor([1.0, 2.0], dtype=torch.float16), "n": torch.tensor(5)}}, shipped)
    soup = make_soup([shipped, run, shipped])
    assert torch.equal(soup["model"]["w"], torch.tensor([2.0, 4.0])) and soup["model"]["w"].dtype == torch.float32
    assert soup["config"] == {"arch": "bunetv2-lite0", "lr": 1e-4} and soup["step"] == 3   # the run's settings
    with pytest.raises(InputError, match="at least one training checkpoint"):
        make_soup([shipped, shipped])
    other = tmp_path / "other.pt"
    torch.save({"arch": "bunetv2", "config": None, "state_dict": {"w": torch.zeros(2), "n": torch.tensor(5)}}, other)
    with pytest.raises(InputError, match="architecture 'bunetv2'"):
        make_soup([run, other])
