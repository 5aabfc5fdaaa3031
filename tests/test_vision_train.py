"""Classifiers on the shared trainer: batches, evaluation, FGSM, learning, adversarial training, exact resume,
checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from nlm.classify.attack import attack_images, fgsm, parse_epsilons, perturb
from nlm.classify.evaluation import align_labels, confusion_matrix, evaluate_images, predict
from nlm.classify.loading import load_classifier
from nlm.classify.task import ClassifyConfig
from nlm.classify.training import ClassifierJob, classifier_config
from nlm.errors import CheckpointError, ConfigError, DataError
from nlm.images.batches import shuffled_batches
from nlm.images.data import ImageSet, generate_digits
from nlm.images.sources import ImageSources
from nlm.io.checkpoint import load_checkpoint
from nlm.models.classifiers import MLPClassifier, MLPConfig
from nlm.train.config import TrainConfig

QUIET = Console(stderr=True, quiet=True)
CPU = torch.device("cpu")


def fit(tmp_path, name, *, arch="mlp", model=None, data=None, images=None, sources=None, **train):
    """Train a classifier quietly on the CPU into tmp_path/name; Adam at 3e-3 unless told otherwise."""
    model = model or classifier_config(arch, hidden=(32,))
    train = {"optimizer": "adam", "lr": 3e-3, "clip": 0.0, "device": "cpu", "epochs": 5, **train}
    job = ClassifierJob(
        arch=arch, model=model, data=data or ClassifyConfig(), sources=sources or ImageSources(), images=images
    )
    return job.start(output=tmp_path / name, train=TrainConfig(**train), console=QUIET, quiet=True)


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- batches, evaluation and FGSM on known numbers ----------------------------------------------


def test_shuffled_batches_cover_every_image_once_and_restart_mid_epoch():
    batches = list(shuffled_batches(10, 4, seed=3, epoch=1))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [b.tolist() for b in shuffled_batches(10, 4, seed=3, epoch=1, start=1)] == [b.tolist() for b in batches[1:]]
    assert torch.cat(batches).tolist() != torch.cat(list(shuffled_batches(10, 4, seed=3, epoch=2))).tolist()


def test_confusion_matrix_and_per_class_accuracy():
    predicted, labels = torch.tensor([0, 1, 1, 2, 2, 0]), torch.tensor([0, 1, 2, 2, 2, 1])
    assert confusion_matrix(predicted, labels, 4).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]]
    # A classifier that always answers class 1: accuracy 2/5, class 3 has no images.
    model = MLPClassifier(MLPConfig(input_shape=(1, 2, 2), hidden=(), num_classes=4))
    with torch.no_grad():
        model.dense.out.weight.zero_()
        model.dense.out.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    images = ImageSet(
        torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([1, 1, 0, 2, 2]), ("a", "b", "c", "d"), "t"
    )
    result = evaluate_images(model, images.classes, images, device=CPU)
    assert result.accuracy == pytest.approx(2 / 5) and result.per_class == [0.0, 1.0, 0.0, None]
    expected_loss = -torch.log_softmax(torch.tensor([0.0, 1.0, 0.0, 0.0]), 0)[[1, 1, 0, 2, 2]].mean().item()
    assert result.loss == pytest.approx(expected_loss)
    assert result.to_dict()["confusion"][1] == [0, 2, 0, 0]
    assert (
        list(predict(model, images.images, device=CPU))
        == [(1, pytest.approx(torch.softmax(torch.tensor([0.0, 1, 0, 0]), 0)[1].item()))] * 5
    )


def test_labels_are_matched_to_the_model_by_class_name():
    images = ImageSet(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0]), ("dog", "zebra"), "folder")
    assert align_labels(images, ("cat", "dog", "zebra")).tolist() == [1, 2, 1]
    with pytest.raises(DataError, match="classes 'dog' that the model does not know"):
        align_labels(
            ImageSet(images.images, images.labels, ("dog", "emu"), "folder").subset(torch.tensor([1])), ("cat", "emu")
        )


def test_fgsm_moves_each_pixel_by_epsilon_along_the_gradient_sign():
    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(input_shape=(1, 3, 3), hidden=(), num_classes=3))
    x, y = torch.full((4, 1, 3, 3), 0.5), torch.tensor([0, 1, 2, 0])
    # For logits W x + b, d CE / d x = W^T (softmax - onehot) / batch.
    logits = model(x)
    expected = ((logits.softmax(1) - F.one_hot(y, 3)) @ model.dense.out.weight).reshape(x.shape).sign()
    adversarial = fgsm(model, x, y, 0.1)
    assert torch.allclose(adversarial - x, 0.1 * expected)
    assert model.dense.out.weight.grad is None  # the parameters are left alone
    assert F.cross_entropy(model(adversarial), y) > F.cross_entropy(model(x), y)
    assert perturb(torch.tensor([0.05, 0.95]), torch.tensor([-1.0, 1.0]), 0.1).tolist() == [0.0, 1.0]  # stays in [0, 1]


@pytest.mark.parametrize("text, words", [("0,x", "numbers separated by commas"), ("0,1.5", r"in \[0, 1\]")])
def test_bad_epsilons(text, words):
    assert parse_epsilons("0, 0.1,0.3") == (0.0, 0.1, 0.3)
    with pytest.raises(ConfigError, match=words):
        parse_epsilons(text)


# --- training on the shared trainer ------------------------------------------------------------


@pytest.mark.slow
def test_lenet_reaches_95_percent_on_generated_digits(tmp_path):
    images = generate_digits(3000, seed=1), generate_digits(1000, seed=2)
    result = fit(tmp_path, "lenet", arch="cnn", model=classifier_config("cnn"), images=images, epochs=5)
    assert max(m["accuracy"] for m in metrics(result.run_dir)) >= 0.95


@pytest.mark.slow
def test_fgsm_accuracy_falls_with_epsilon_and_adversarial_training_resists_it(tmp_path):
    images = generate_digits(2000, seed=1), generate_digits(500, seed=2)
    epsilons = [0.0, 0.05, 0.1, 0.2]
    accuracies = {}
    for name, epsilon in [("clean", 0.0), ("adversarial", 0.1)]:
        fit(
            tmp_path,
            name,
            model=classifier_config("mlp", hidden=(64,)),
            data=ClassifyConfig(epsilon=epsilon),
            images=images,
            epochs=3,
        )
        loaded = load_classifier(tmp_path / name)
        accuracies[name] = [
            r.accuracy for r in attack_images(loaded.model, loaded.classes, images[1], epsilons, device=CPU)
        ]
    clean, adversarial = accuracies["clean"], accuracies["adversarial"]
    assert clean[0] > 0.75 and clean[0] > clean[1] > clean[2] >= clean[3], clean
    assert adversarial[1] > clean[1] + 0.2 and adversarial[2] > clean[2] + 0.08, accuracies


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    run = dict(data="generated:300:3", valid="generated:100:4")
    options = dict(
        model=classifier_config("mlp", hidden=(16,), dropout=0.3), data=ClassifyConfig(batch_size=32, epsilon=0.05)
    )
    fit(tmp_path, "straight", sources=ImageSources(**run), epochs=2, **options)
    fit(tmp_path, "epochwise", sources=ImageSources(**run), epochs=1, **options)
    ClassifierJob.resume(run_dir=tmp_path / "epochwise", changes={"epochs": 2}, console=QUIET, quiet=True)
    fit(tmp_path, "midway", sources=ImageSources(**run), epochs=2, max_steps=13, **options)
    ClassifierJob.resume(run_dir=tmp_path / "midway", changes={"max_steps": 10**9}, console=QUIET, quiet=True)
    expected = _weights(tmp_path / "straight")
    for name in ("epochwise", "midway"):
        resumed = _weights(tmp_path / name)
        assert all(torch.equal(resumed[k], expected[k]) for k in expected), name
    assert [m["loss"] for m in metrics(tmp_path / "epochwise")] == [m["loss"] for m in metrics(tmp_path / "straight")]


def test_checkpoint_rebuilds_the_classifier_and_names_its_kind(tmp_path):
    images = generate_digits(200, size=12, seed=1), generate_digits(50, size=12, seed=2)
    result = fit(
        tmp_path,
        "run",
        arch="cnn",
        model=classifier_config("cnn", conv="4:3:1:1", hidden=(8,)),
        images=images,
        epochs=1,
    )
    checkpoint = load_checkpoint(result.run_dir / "best.pt", kind="vision")
    assert checkpoint["kind"] == "vision" and checkpoint["classes"] == [str(d) for d in range(10)]
    assert checkpoint["config"]["model_kind"] == "cnn" and checkpoint["config"]["model"]["input_shape"] == (1, 12, 12)
    loaded = load_classifier(result.run_dir)
    evaluation = evaluate_images(loaded.model, loaded.classes, images[1], device=CPU)
    assert evaluation.loss == pytest.approx(metrics(result.run_dir)[-1]["loss"], rel=1e-5)
    with pytest.raises(CheckpointError, match="holds a vision model, but this command needs a language model"):
        load_checkpoint(result.run_dir / "best.pt", kind="lm")
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["train_data"] is None and config["given_images"] == ["generated:200:1", "generated:50:2"]
    with pytest.raises(ConfigError, match="pass --data"):  # images handed over by a program cannot be reloaded
        ClassifierJob.resume(run_dir=result.run_dir, changes={"epochs": 2}, console=QUIET, quiet=True)


def test_init_from_needs_an_mlp_and_an_autoencoder(tmp_path):
    with pytest.raises(ConfigError, match="use --arch mlp"):
        classifier_config("cnn", init_from=str(tmp_path))
    fit(tmp_path, "classifier", images=(generate_digits(50, size=8, seed=1), None), epochs=1)
    with pytest.raises(CheckpointError, match="holds a vision model, but this command needs an autoencoder"):
        classifier_config("mlp", init_from=str(tmp_path / "classifier"))
