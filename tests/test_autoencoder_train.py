"""Autoencoders on the shared trainer: PCA, denoising, stacked phases and their resume, encoder transfer, codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rich.console import Console
from test_autoencoder_models import captured

from nlm.autoencode.inference import encode_images, load_autoencoder, reconstruct, write_codes
from nlm.autoencode.task import ReconstructConfig
from nlm.autoencode.training import AutoencoderJob, autoencoder_config
from nlm.classify.loading import load_classifier
from nlm.classify.task import ClassifyConfig
from nlm.classify.training import ClassifierJob, classifier_config, initialise_from_encoder
from nlm.images.data import generate_digits
from nlm.images.sources import ImageSources
from nlm.models.autoencoder import Autoencoder
from nlm.models.classifiers import build_classifier
from nlm.runtime import seed_everything
from nlm.train.config import TrainConfig

QUIET = Console(stderr=True, quiet=True)


def fit(tmp_path, name, model, *, images=None, sources=None, data=None, **train):
    train = {"optimizer": "adam", "lr": 3e-3, "clip": 0.0, "device": "cpu", "epochs": 10, **train}
    job = AutoencoderJob(
        model=model, data=data or ReconstructConfig(batch_size=50), sources=sources or ImageSources(), images=images
    )
    return job.start(output=tmp_path / name, train=TrainConfig(**train), console=QUIET, quiet=True)


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def digits():
    """Generated 14x14 digits: 600 to train on, 200 to validate on."""
    return generate_digits(600, size=14, seed=1), generate_digits(200, size=14, seed=2)


@pytest.mark.slow
def test_linear_autoencoder_reaches_the_error_of_pca(tmp_path, digits):
    k, x = 8, digits[0].floats().flatten(1)
    # Exact PCA: the mean plus the projection on the top k right singular vectors of the centred data.
    mean = x.double().mean(0)
    _, _, vh = torch.linalg.svd(x.double() - mean, full_matrices=False)
    pca_error = ((x - mean) @ vh[:k].T @ vh[:k] + mean - x).pow(2).mean().item()
    model = autoencoder_config("undercomplete", hidden=(k,), code_activation="linear", output_activation="linear")
    result = fit(tmp_path, "linear", model, images=(digits[0], None), lr=0.03, epochs=40, lr_factor=0.5)
    loaded = load_autoencoder(result.run_dir / "last.pt")
    _, _, error = reconstruct(loaded, digits[0])
    assert error < 1.02 * pca_error, error / pca_error  # within 2% of the best rank-k linear reconstruction ...
    assert (
        captured(loaded.model.decoder[0].weight, vh[:6].T).min() > 0.97
    )  # ... by finding the leading principal directions


@pytest.mark.slow
def test_denoising_autoencoder_reconstructs_corrupted_inputs_better(tmp_path, digits):
    errors = {}
    for name, noise in [("plain", 0.0), ("denoising", 0.5)]:
        model = autoencoder_config("denoising", hidden=(64,), code_activation="relu", corruption="mask", noise=noise)
        fit(tmp_path, name, model, images=digits, epochs=8)
        errors[name] = reconstruct(load_autoencoder(tmp_path / name), digits[1], corruption="mask", noise=0.5, seed=3)[
            2
        ]
    assert errors["denoising"] < 0.97 * errors["plain"], errors


STACKED = dict(hidden=(48, 12), code_activation="relu", noise=0.2)


def test_stacked_pretraining_runs_layer_by_layer_then_fine_tunes(tmp_path, digits):
    result = fit(
        tmp_path,
        "stacked",
        autoencoder_config("stacked", **STACKED),
        images=digits,
        epochs=2,
        data=ReconstructConfig(batch_size=50, pretrain_epochs=2),
    )
    phases = [m["phase"] for m in metrics(result.run_dir)]
    assert phases == ["layer 1/2"] * 2 + ["layer 2/2"] * 2 + ["fine-tune"] * 2
    losses = {phase: [m["loss"] for m in metrics(result.run_dir) if m["phase"] == phase] for phase in phases}
    assert all(later < first for first, later in losses.values()), losses
    assert (
        result.stop_reason == "epochs"
        and torch.load(result.run_dir / "best.pt", weights_only=True)["trainer"]["task"]["phase"] == 2
    )


def test_the_first_phase_trains_only_the_first_layer(tmp_path, digits):
    result = fit(tmp_path, "stacked", autoencoder_config("stacked", **STACKED), images=digits, max_steps=3)
    assert result.stop_reason == "max-steps" and metrics(result.run_dir)[-1]["phase"] == "layer 1/2"
    seed_everything(1)
    fresh = Autoencoder(autoencoder_config("stacked", input_size=196, **STACKED)).state_dict()
    trained = torch.load(result.run_dir / "last.pt", weights_only=True)["model"]
    changed = {k for k in fresh if not torch.equal(fresh[k], trained[k])}
    assert changed == {"encoder.0.weight", "encoder.0.bias", "decoder.1.weight", "decoder.1.bias"}


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def test_resume_continues_the_phase_it_stopped_in(tmp_path):
    run = dict(data="generated:200:3", valid="generated:50:4")
    model = autoencoder_config("stacked", hidden=(32, 8), noise=0.3)  # corruption: the RNG state must be restored
    data = ReconstructConfig(batch_size=40, pretrain_epochs=1)  # 5 steps per epoch: phases end at steps 5, 10, 20
    fit(tmp_path, "straight", model, sources=ImageSources(**run), data=data, epochs=2)
    for name, stop in [("mid-layer-1", 3), ("mid-layer-2", 7), ("between-phases", 5), ("mid-fine-tune", 13)]:
        stopped = fit(tmp_path, name, model, sources=ImageSources(**run), data=data, epochs=2, max_steps=stop)
        assert stopped.stop_reason == "max-steps"
        if name == "between-phases":  # finish layer 1's epoch within the same budget: last.pt ends the phase
            again = AutoencoderJob.resume(
                run_dir=tmp_path / name, changes={"max_steps": stop}, console=QUIET, quiet=True
            )
            assert again.stop_reason == "max-steps" and metrics(tmp_path / name)[-1]["phase"] == "layer 1/2"
            assert torch.load(tmp_path / name / "last.pt", weights_only=True)["trainer"]["progress"]["epoch"] == 1
        AutoencoderJob.resume(run_dir=tmp_path / name, changes={"max_steps": 10**9}, console=QUIET, quiet=True)
    expected = _weights(tmp_path / "straight")
    for name in ("mid-layer-1", "mid-layer-2", "between-phases", "mid-fine-tune"):
        resumed = _weights(tmp_path / name)
        assert all(torch.equal(resumed[k], expected[k]) for k in expected), name
        assert [m["phase"] for m in metrics(tmp_path / name)][-2:] == ["fine-tune"] * 2


def test_a_pretrained_encoder_initialises_a_classifier(tmp_path, digits):
    fit(
        tmp_path,
        "ae",
        autoencoder_config("stacked", **STACKED),
        images=digits,
        epochs=1,
        data=ReconstructConfig(batch_size=50, pretrain_epochs=1),
    )
    config = classifier_config("mlp", init_from=str(tmp_path / "ae"))
    assert config.hidden == (48, 12) and config.activation == "relu"
    network = build_classifier("mlp", config.replace(input_shape=(1, 14, 14)))
    assert initialise_from_encoder(network, tmp_path / "ae").startswith("initialised 2 hidden layer(s)")
    encoder = load_autoencoder(tmp_path / "ae").model.encoder
    assert all(torch.equal(network.dense.hidden[k].weight, encoder[k].weight) for k in range(2))
    job = ClassifierJob(
        arch="mlp", model=config, data=ClassifyConfig(batch_size=50), init_from=str(tmp_path / "ae"), images=digits
    )
    result = job.start(
        output=tmp_path / "classifier",
        console=QUIET,
        quiet=True,
        train=TrainConfig(optimizer="adam", lr=1e-3, clip=0.0, epochs=1, device="cpu"),
    )
    assert json.loads((result.run_dir / "config.json").read_text())["init_from"] == str(tmp_path / "ae")
    # After an epoch of fine-tuning the first layer is still near the encoder, far from a fresh start.
    trained = load_classifier(result.run_dir).model.dense.hidden[0].weight
    fresh = build_classifier("mlp", config.replace(input_shape=(1, 14, 14))).dense.hidden[0].weight
    assert (trained - encoder[0].weight).norm() < 0.5 * (fresh - encoder[0].weight).norm()


def test_codes_are_the_encoder_outputs_in_input_order(tmp_path, digits):
    fit(tmp_path, "ae", autoencoder_config("undercomplete", hidden=(10,)), images=digits, epochs=1)
    loaded = load_autoencoder(tmp_path / "ae")
    codes = encode_images(loaded, digits[1], batch_size=64)  # batches that do not divide 200
    assert codes.shape == (200, 10) and torch.allclose(codes, loaded.model.encode(digits[1].floats()), atol=1e-6)
    write_codes(codes, tmp_path / "out" / "codes.bin")
    assert np.array_equal(np.load(tmp_path / "out" / "codes.bin"), codes.numpy())
