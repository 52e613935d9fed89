import numpy as np
import torch

from edge.segment.losses import class_weights, dense_crf_loss, focal_loss
from edge.segment.unet import BUNetV2, UNetConfig, load_weights, network_size, predict_probability, save_weights

torch.set_num_threads(1)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = BUNetV2(UNetConfig(base_width=4, input_long_side=64)).eval()
    # Non-trivial batch-norm statistics, so eval mode is not an identity.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def random_photo(seed=0, height=32, width=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_network_size_keeps_aspect_and_multiples_of_16():
    assert network_size(1080, 1920, 512) == (288, 512)
    assert network_size(2970, 5280, 512) == (288, 512)
    h, w = network_size(1000, 700, 512)
    assert h == 512 and w % 16 == 0 and abs(w - 358) <= 8


def test_unet_output_shape():
    model = tiny_model()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 48, 80)).shape == (2, 1, 48, 80)


def test_flip_averaged_probability_is_flip_equivariant():
    model = tiny_model()
    photo = random_photo()
    probability = predict_probability(model, photo)
    for axis in (0, 1):
        flipped = np.ascontiguousarray(np.flip(photo, axis))
        np.testing.assert_allclose(predict_probability(model, flipped), np.flip(probability, axis), atol=1e-5)
    flipped_both = np.ascontiguousarray(photo[::-1, ::-1])
    np.testing.assert_allclose(predict_probability(model, flipped_both), probability[::-1, ::-1], atol=1e-5)
    # Without the flips the map is not equivariant for a random network.
    single = predict_probability(model, photo, flips=False)
    single_flipped = predict_probability(model, np.ascontiguousarray(photo[:, ::-1]), flips=False)
    assert np.abs(single_flipped - single[:, ::-1]).max() > 1e-4


def test_fp16_weights_round_trip(tmp_path):
    model = tiny_model()
    save_weights(model, tmp_path / "w.pt")
    loaded = load_weights(tmp_path / "w.pt")
    assert loaded.config == model.config
    photo = random_photo(1)
    np.testing.assert_allclose(predict_probability(loaded, photo), predict_probability(model, photo), atol=2e-3)
    # The file's bytes (and so the hash a registry would pin) do not depend on its name.
    save_weights(model, tmp_path / "bunetv2.pt")
    assert (tmp_path / "bunetv2.pt").read_bytes() == (tmp_path / "w.pt").read_bytes()


def test_class_weights_favour_the_rare_class_and_average_one():
    background, blade = class_weights(0.04)
    assert blade > background
    assert abs(0.96 * background + 0.04 * blade - 1) < 1e-9


def test_focal_loss_prefers_correct_confident_logits():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4] = 1
    good = (target * 2 - 1) * 4
    weights = class_weights(0.5)
    assert focal_loss(good, target, weights) < focal_loss(torch.zeros_like(good), target, weights)
    assert focal_loss(good, target, weights) < focal_loss(-good, target, weights)


def test_crf_loss_prefers_label_edges_on_colour_edges():
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0                    # colour edge at column 16
    on_edge = torch.zeros(1, 1, 32, 32)
    on_edge[..., 16:] = 1
    off_edge = torch.zeros(1, 1, 32, 32)
    off_edge[..., 8:] = 1                    # label edge through uniform colour
    constant = torch.full((1, 1, 32, 32), 1.0)
    assert dense_crf_loss(constant, image, downsample=2).item() == 0
    assert dense_crf_loss(on_edge, image, downsample=2) < dense_crf_loss(off_edge, image, downsample=2)
    # Differentiable, so it can train the network.
    probability = torch.full((1, 1, 32, 32), 0.5, requires_grad=True)
    dense_crf_loss(probability, image, downsample=2).backward()
    assert probability.grad is not None and torch.isfinite(probability.grad).all()
