"""Autoencoders (shapes, penalties, corruption, stacked pieces, PCA) and the PNG writers."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nlm.errors import ConfigError, DataError
from nlm.images.data import generate_digits
from nlm.io.png import save_filters, save_grid, save_pairs
from nlm.models.autoencoder import Autoencoder, AutoencoderConfig, reconstruction_error


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """300 generated 14x14 digits, flat [300, 196] in [0, 1]."""
    return generate_digits(300, size=14, seed=0).floats().flatten(1)


def adam_steps(loss_fn, parameters, *, steps: int, lr: float) -> tuple[float, float]:
    """Plain optimiser steps on a full-batch loss; returns (first loss, last loss)."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "undercomplete", "hidden": (16,)},
        {"kind": "sparse", "hidden": (100,), "sparsity": 0.1, "code_activation": "relu"},
        {"kind": "denoising", "hidden": (80,), "corruption": "gaussian", "noise": 0.2},
        {"kind": "stacked", "hidden": (32, 8), "output_activation": "linear"},
    ],
)
def test_shapes_of_every_kind(changes):
    ae = Autoencoder(AutoencoderConfig(input_size=64, **changes))
    x = torch.rand(5, 1, 8, 8)
    reconstruction, code = ae(x)
    assert reconstruction.shape == (5, 64) and code.shape == (5, changes["hidden"][-1])
    assert torch.equal(ae.encode(x), code) and ae.decode(code).shape == (5, 64)
    loss, metrics = ae.loss(x)
    assert loss.dim() == 0 and set(metrics) == {"mse", "sparsity"}


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"kind": "contractive"}, "unknown autoencoder kind"),
        ({"kind": "sparse"}, "sparsity weight > 0"),
        ({"hidden": (64,)}, "undercomplete code must be smaller"),
        ({"kind": "stacked", "hidden": (32,)}, "two or more hidden sizes"),
        ({"hidden": ()}, "hidden sizes"),
        ({"code_activation": "gelu"}, "unknown activation 'gelu'"),
        ({"corruption": "blur"}, "unknown corruption"),
        ({"corruption": "mask", "noise": 1.0}, "corruption level"),
        ({"sparsity": -1.0}, "sparsity weight must be"),
    ],
)
def test_config_errors(changes, words):
    with pytest.raises(ConfigError, match=words):
        AutoencoderConfig(**{"input_size": 64, "hidden": (16,), **changes})


def test_config_round_trip():
    config = AutoencoderConfig(kind="stacked", input_size=64, hidden=(32, 8))
    assert AutoencoderConfig.from_dict({**config.to_dict(), "hidden": [32, 8]}) == config
    assert config.sizes == (64, 32, 8)


def test_sparsity_penalty_is_part_of_the_loss():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(kind="sparse", input_size=64, hidden=(100,), sparsity=0.5))
    x = torch.rand(6, 64)
    loss, metrics = ae.loss(x)
    reconstruction, code = ae(x)
    assert metrics["sparsity"] > 0
    assert torch.allclose(metrics["sparsity"], 0.5 * code.abs().mean())
    assert torch.allclose(loss, reconstruction_error(reconstruction, x) + metrics["sparsity"])
    assert Autoencoder(AutoencoderConfig(input_size=64, hidden=(8,))).penalty(code) == 0


@pytest.mark.parametrize("corruption, noise", [("mask", 0.5), ("gaussian", 0.3)])
def test_denoising_corrupts_the_input_but_not_the_target(corruption, noise):
    torch.manual_seed(0)
    ae = Autoencoder(
        AutoencoderConfig(kind="denoising", input_size=64, hidden=(32,), corruption=corruption, noise=noise)
    )
    x = torch.rand(8, 64)
    before = x.clone()
    noisy = ae.corrupt(x, torch.Generator().manual_seed(1))
    assert not torch.equal(noisy, x) and torch.equal(x, before)
    if corruption == "mask":
        assert 0.35 < (noisy == 0).float().mean() < 0.65
    loss, _ = ae.loss(x, torch.Generator().manual_seed(1))  # same generator: same corruption
    assert torch.allclose(loss, reconstruction_error(ae(noisy)[0], x))  # target is the clean x
    ae.eval()  # no corruption outside training
    assert torch.allclose(ae.loss(x)[0], reconstruction_error(ae(x)[0], x))


def test_encoder_state_keys():
    ae = Autoencoder(AutoencoderConfig(kind="stacked", input_size=64, hidden=(32, 8)))
    state = ae.encoder_state()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "0.weight": (32, 64),
        "0.bias": (32,),
        "1.weight": (8, 32),
        "1.bias": (8,),
    }


def test_stacked_layerwise_pretraining_then_fine_tuning(digits):
    """The pieces a task drives: pretrain layer 0, then 1, each on its own parameters, then all."""
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(kind="stacked", input_size=196, hidden=(48, 12), noise=0.2))
    noise = torch.Generator().manual_seed(0)
    assert ae.layer_input(digits, 0).shape == (300, 196) and ae.layer_input(digits, 1).shape == (300, 48)
    for k in range(ae.num_layers):
        others = {name: p.clone() for name, p in ae.named_parameters()}
        first, last = adam_steps(lambda k=k: ae.layer_loss(digits, k, noise), ae.layer_parameters(k), steps=40, lr=1e-2)
        assert last < 0.7 * first
        changed = {name for name, p in ae.named_parameters() if not torch.equal(p, others[name])}
        assert changed == {
            f"encoder.{k}.weight",
            f"encoder.{k}.bias",
            f"decoder.{1 - k}.weight",
            f"decoder.{1 - k}.bias",
        }
    ae.eval()
    pretrained = ae.loss(digits)[0].item()
    ae.train()
    adam_steps(lambda: ae.loss(digits, noise), ae.parameters(), steps=40, lr=3e-3)
    ae.eval()
    assert ae.loss(digits)[0].item() < pretrained


def captured(a: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """How much of each unit column of `directions` [D, j] lies in the column space of a [D, k]: 1 is all of it."""
    q = torch.linalg.qr(a.detach().double())[0]
    return (q.T @ directions.double()).norm(dim=0)


def test_linear_autoencoder_approaches_pca(digits):
    k = 8
    mean = digits.mean(0)
    _, _, vh = torch.linalg.svd(digits - mean, full_matrices=False)
    pca_error = ((digits - mean) @ vh[:k].T @ vh[:k] + mean - digits).pow(2).mean().item()
    torch.manual_seed(0)
    config = AutoencoderConfig(input_size=196, hidden=(k,), code_activation="linear", output_activation="linear")
    ae = Autoencoder(config)
    adam_steps(lambda: ae.loss(digits), ae.parameters(), steps=300, lr=1e-2)
    error = ae.loss(digits)[0].item()
    assert error < 1.05 * pca_error  # a trained linear autoencoder gets close to the best rank-k reconstruction ...
    assert captured(ae.decoder[0].weight, vh[:4].T).min() > 0.97  # ... by finding the leading principal directions


# --- PNG output ------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, nrow, padding, scale, size",
    [
        (10, 4, 2, 1, (4 * 10 + 2, 3 * 10 + 2)),  # 3 rows of 4 images of 8x8 with 2 px of padding
        (3, 8, 0, 3, (3 * 8 * 3, 8 * 3)),  # fewer images than a row; scaled 3x
        (1, 8, 1, 2, (10 * 2, 10 * 2)),
    ],
)
def test_save_grid_size(tmp_path, n, nrow, padding, scale, size):
    path = tmp_path / "out" / "grid.png"
    assert save_grid(torch.rand(n, 1, 8, 8), path, nrow=nrow, padding=padding, scale=scale) == size
    with Image.open(path) as image:
        assert image.size == size and image.mode == "L"
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temp file left behind


def test_save_grid_uint8_rgb_pixels(tmp_path):
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    images[1, 0] = 255
    save_grid(images, tmp_path / "g.png", nrow=2, padding=0)
    with Image.open(tmp_path / "g.png") as image:
        assert image.mode == "RGB" and image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((5, 1)) == (255, 0, 0)


def test_save_pairs_and_filters(tmp_path):
    inputs = torch.rand(5, 64)
    size = save_pairs(inputs, inputs.flip(0), tmp_path / "pairs.png", image_shape=(1, 8, 8), nrow=3, padding=1)
    assert size == (6 * 9 + 1, 2 * 9 + 1)  # 3 pairs per row -> 6 columns, 2 rows
    weight = torch.randn(10, 64)
    weight[3] = 7.0  # a constant unit is drawn mid grey, not a division by zero
    assert save_filters(weight, (1, 8, 8), tmp_path / "filters.png", padding=0, scale=1) == (32, 24)
    with Image.open(tmp_path / "filters.png") as image:
        tile = [image.getpixel((x, y)) for y in range(8) for x in range(8)]
        assert min(tile) == 0 and max(tile) == 255  # each unit stretched to the full range
        assert image.getpixel((3 * 8 + 2, 2)) == 128


def test_png_errors(tmp_path):
    with pytest.raises(DataError, match="do not pair"):
        save_pairs(torch.rand(2, 64), torch.rand(3, 64), tmp_path / "p.png", image_shape=(1, 8, 8))
    with pytest.raises(DataError, match=r"not \[units, 64\]"):
        save_filters(torch.rand(4, 60), (1, 8, 8), tmp_path / "f.png")
    with pytest.raises(DataError, match="cannot draw"):
        save_grid(torch.rand(0, 1, 4, 4), tmp_path / "e.png")
