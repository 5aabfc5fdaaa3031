"""The pictures of a trained classifier: FGSM examples (clean, perturbation, adversarial) and first-layer filters."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import nlm, png_size

from nlm.classify.attack import fgsm
from nlm.classify.loading import load_classifier
from nlm.classify.pictures import (
    attack_examples,
    draw_attack_examples,
    first_layer,
    perturbation_pixels,
    save_classifier_filters,
)
from nlm.errors import ConfigError
from nlm.images.data import load_images

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    common = ["--data", "generated:2000:1", "--holdout", 0, "--epochs", 2, "--batch-size", 50, "--device", "cpu", "-q"]
    for arch, extra in [("cnn", []), ("mlp", ["--hidden", 16])]:
        result = nlm("vision", "train", "-o", root / arch, "--arch", arch, *extra, *common)
        assert result.exit_code == 0, result.stderr
    return {arch: load_classifier(root / arch) for arch in ("cnn", "mlp")}


def test_attack_examples_are_fgsm_and_lower_the_true_class(classifiers):
    loaded, images = classifiers["cnn"], load_images("generated:50:9")
    examples = attack_examples(loaded.model, loaded.classes, images, count=8, epsilon=0.2, device=CPU)
    assert examples.clean.shape == examples.adversarial.shape == (8, 1, 28, 28)
    assert torch.equal(examples.adversarial, fgsm(loaded.model, examples.clean, examples.labels, 0.2))
    assert (examples.adversarial - examples.clean).abs().max() <= 0.2 + 1e-6
    # the middle row draws what its label says, sign(grad) x epsilon: +-epsilon on every pixel whose gradient is not 0,
    # white or black even where clamping to [0, 1] left the adversarial pixel as it was (the digits' black background)
    assert torch.equal(examples.step.abs() == 0.2, examples.step != 0) and (examples.step != 0).float().mean() > 0.5
    assert torch.equal(examples.adversarial, (examples.clean + examples.step).clamp(0, 1))
    pixels = perturbation_pixels(examples)
    assert set(pixels[examples.step != 0].unique().tolist()) == {0.0, 1.0}
    clamped = (examples.clean == 0) & (examples.step < 0)
    assert clamped.any() and (pixels[clamped] == 0).all()  # black: -epsilon, though x_adv - x is 0 there
    assert torch.allclose(examples.clean_probs.sum(1), torch.ones(8)) and torch.allclose(
        examples.adversarial_probs.sum(1), torch.ones(8)
    )
    true_clean = examples.clean_probs.gather(1, examples.labels[:, None]).mean()
    true_adversarial = examples.adversarial_probs.gather(1, examples.labels[:, None]).mean()
    assert true_adversarial < true_clean - 0.2
    rows = examples.rows()
    assert [row["index"] for row in rows] == list(range(8))
    assert [row["label"] for row in rows] == [loaded.classes[int(y)] for y in images.labels[:8]]
    assert rows[0]["clean_probability"] == pytest.approx(float(examples.clean_probs[0].max()))


def test_correct_only_skips_the_images_the_model_gets_wrong(classifiers):
    loaded, images = classifiers["mlp"], load_images("generated:200:4")
    everything = attack_examples(loaded.model, loaded.classes, images, count=200, device=CPU)
    right = [row["index"] for row in everything.rows() if row["clean"] == row["label"]]
    assert 0 < len(right) < 200  # a two-epoch MLP gets some wrong
    chosen = attack_examples(loaded.model, loaded.classes, images, count=6, correct_only=True, device=CPU)
    assert [row["index"] for row in chosen.rows()] == right[:6]
    assert all(row["clean"] == row["label"] for row in chosen.rows())


def test_the_attack_picture_has_one_column_per_image(classifiers, tmp_path):
    loaded = classifiers["cnn"]
    for count, width in [(8, 1060), (3, 435)]:
        examples = attack_examples(
            loaded.model, loaded.classes, load_images("generated:20:3"), count=count, epsilon=0.1, device=CPU
        )
        assert draw_attack_examples(examples, tmp_path / f"{count}.png") == (width, 440)
        assert png_size(tmp_path / f"{count}.png") == (width, 440)
    with pytest.raises(ConfigError, match="--count must be at least 1"):
        attack_examples(loaded.model, loaded.classes, load_images("generated:20:3"), count=0, device=CPU)


@pytest.mark.parametrize(
    "arch, units, shape, size",
    [
        ("cnn", 6, (1, 5, 5), (228, 156)),  # 3 x 2 kernels of 5x5, each drawn 12 times as large
        ("mlp", 16, (1, 28, 28), (234, 234)),  # 4 x 4 units of 28x28 weights, twice as large
    ],
)
def test_first_layer_filters_make_a_grid_png(classifiers, tmp_path, arch, units, shape, size):
    model = classifiers[arch].model
    weight, drawn_shape = first_layer(model)
    assert weight.shape[0] == units and drawn_shape == shape
    assert save_classifier_filters(model, tmp_path / "f.png") == (units, *size)
    assert png_size(tmp_path / "f.png") == size
    assert save_classifier_filters(model, tmp_path / "two.png", count=2)[0] == 2
