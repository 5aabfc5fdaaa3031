"""`nlm vision` and `nlm autoencoder` through the real CLI: outputs, PNG sizes, and each bad input's message and
exit code."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
from cli_helpers import nlm, one_line_error
from PIL import Image

TINY_MLP = ["--arch", "mlp", "--hidden", "16", "--batch-size", "50", "--device", "cpu", "-q"]
TINY_AE = ["--hidden", "16", "--batch-size", "50", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    run = tmp_path_factory.mktemp("vision") / "run"
    result = nlm(
        "vision",
        "train",
        "--data",
        "generated:300:1",
        "--valid",
        "generated:100:2",
        "-o",
        run,
        "--epochs",
        "1",
        *TINY_MLP,
    )
    assert result.exit_code == 0, result.stderr
    return run


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    run = tmp_path_factory.mktemp("ae") / "run"
    result = nlm("autoencoder", "train", "--data", "generated:300:1", "-o", run, "--epochs", "1", *TINY_AE)
    assert result.exit_code == 0, result.stderr
    return run


def test_vision_train_writes_a_run_folder_and_resumes(classifier):
    assert {p.name for p in classifier.iterdir()} == {
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "meta.json",
        "config.json",
        ".lock",
    }
    again = nlm("vision", "train", "--data", "generated:300:1", "-o", classifier, *TINY_MLP)
    assert again.exit_code == 73 and "already holds a run" in again.stderr
    resumed = nlm("vision", "train", "--resume", classifier, "--epochs", "2", "-q")
    assert resumed.exit_code == 0, resumed.stderr
    assert [json.loads(line)["epoch"] for line in (classifier / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_eval_reports_on_stdout_as_text_or_json(classifier):
    result = nlm("vision", "eval", "-m", classifier, "--data", "generated:200:5", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 200 and sum(map(sum, report["confusion"])) == 200
    correct = sum(report["confusion"][i][i] for i in range(10))
    assert report["accuracy"] == pytest.approx(correct / 200) and set(report["per_class"]) == {
        str(d) for d in range(10)
    }
    text = nlm("vision", "eval", "-m", classifier, "--data", "generated:200:5")
    assert text.exit_code == 0 and text.stderr == ""
    assert f"accuracy {correct / 200:.2%} (200 images)" in text.stdout and "confusion matrix" in text.stdout
    matrix = text.stdout.split("predicted class)\n")[1].splitlines()
    assert [int(row.split()[1 + i]) for i, row in enumerate(matrix[1:])] == [
        report["confusion"][i][i] for i in range(10)
    ]


def test_predict_writes_one_tsv_row_per_image_in_order(classifier, tmp_path):
    result = nlm("vision", "predict", "-m", classifier, "--data", "generated:30:7")
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [int(r[0]) for r in rows] == list(range(30)) and all(
        r[1] in "0123456789" and 0.1 <= float(r[2]) <= 1 for r in rows
    )
    # unlabelled loose images are fine for predict
    x = (np.random.default_rng(0).random((4, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "x.npz", x=x)
    assert nlm("vision", "predict", "-m", classifier, "--data", tmp_path / "x.npz").stdout.count("\n") == 4


def test_attack_reports_accuracy_per_epsilon(classifier):
    result = nlm("vision", "attack", "-m", classifier, "--data", "generated:200:5", "--epsilons", "0,0.1,0.3")
    assert result.exit_code == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header == "epsilon\taccuracy\timages"  # the columns, named as the JSON keys
    rows = [tuple(map(float, line.split("\t"))) for line in lines]
    assert [e for e, _, _ in rows] == [0.0, 0.1, 0.3] and rows[0][1] > rows[2][1] and {n for _, _, n in rows} == {200}
    clean = json.loads(nlm("vision", "eval", "-m", classifier, "--data", "generated:200:5", "--format", "json").stdout)
    assert rows[0][1] == pytest.approx(clean["accuracy"], abs=1e-4)  # epsilon 0 is no attack
    as_json = json.loads(
        nlm(
            "vision", "attack", "-m", classifier, "--data", "generated:200:5", "--epsilons", "0.1", "--format", "json"
        ).stdout
    )
    assert as_json == {"epsilon": 0.1, "accuracy": pytest.approx(rows[1][1], abs=1e-4), "images": 200}


def test_autoencoder_commands_write_codes_and_pngs_of_the_expected_size(autoencoder, tmp_path):
    codes = nlm("autoencoder", "encode", "-m", autoencoder, "--data", "generated:20:3", "-o", tmp_path / "codes.npy")
    assert codes.exit_code == 0, codes.stderr
    assert np.load(tmp_path / "codes.npy").shape == (20, 16) and "wrote 20 codes of 16 values" in codes.stderr
    pairs = nlm(
        "autoencoder",
        "reconstruct",
        "-m",
        autoencoder,
        "--data",
        "generated:20:3",
        "-o",
        tmp_path / "pairs.png",
        "--count",
        "5",
        "--noise",
        "0.3",
    )
    assert pairs.exit_code == 0, pairs.stderr
    filters = nlm(
        "autoencoder", "filters", "-m", autoencoder, "-o", tmp_path / "filters.png", "--count", "10", "--scale", "1"
    )
    assert filters.exit_code == 0, filters.stderr
    # 5 pairs in one row of 10 images of 28 px with 2 px padding, scaled 2x;
    # 10 filters in a 4-wide grid with 1 px padding
    sizes = {"pairs.png": ((10 * 30 + 2) * 2, 32 * 2), "filters.png": (4 * 29 + 1, 3 * 29 + 1)}
    for name, size in sizes.items():
        with Image.open(tmp_path / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size == size, name


def test_stacked_autoencoder_through_the_cli_and_into_a_classifier(tmp_path):
    ae = nlm(
        "autoencoder",
        "train",
        "--kind",
        "stacked",
        "--hidden",
        "32,8",
        "--pretrain-epochs",
        "1",
        "--data",
        "generated:200:1",
        "-o",
        tmp_path / "ae",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--device",
        "cpu",
    )
    assert ae.exit_code == 0, ae.stderr
    assert "layer 1/2: training layer 1 alone; loss: its error rebuilding its own input (the images)" in ae.stderr
    assert "fine-tune: training the whole network; loss and mse: its error on the images" in ae.stderr
    mlp = nlm(
        "vision",
        "train",
        "--arch",
        "mlp",
        "--init-from",
        tmp_path / "ae",
        "--data",
        "generated:200:1",
        "-o",
        tmp_path / "mlp",
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    assert mlp.exit_code == 0, mlp.stderr
    assert "initialised 2 hidden layer(s) from the encoder" in mlp.stderr and "hidden=32,8 " in mlp.stderr


# --- bad input: one line, one exit code --------------------------------------------------------


def _idx(path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    path.write_bytes(gzip.compress(struct.pack(f">I{len(dims)}I", magic, *dims) + payload))


@pytest.fixture
def bad_inputs(tmp_path):
    np.savez(tmp_path / "small.npz", x=np.zeros((4, 14, 14), np.uint8), y=np.arange(4))
    _idx(tmp_path / "corrupt-images-idx3-ubyte.gz", 0x803, (10, 28, 28), bytes(100))  # the header promises 7,840 bytes
    _idx(tmp_path / "train-images-idx3-ubyte.gz", 0x803, (5, 28, 28), bytes(5 * 784))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x801, (4,), bytes(4))
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "dogs").mkdir()
    return tmp_path


@pytest.mark.parametrize("command", ["eval", "predict", "attack"])
@pytest.mark.parametrize(
    "data, code, words",
    [
        ("small.npz", 65, "images are 1x14x14 but the model expects 1x28x28"),
        ("corrupt-images-idx3-ubyte.gz", 65, "the file is truncated or corrupt"),
        ("train-images-idx3-ubyte.gz", 65, "has 4 labels but"),
        ("empty", 65, "holds no images"),
        ("missing.npz", 66, "no such file or folder"),
    ],
)
def test_bad_images_for_a_classifier(classifier, bad_inputs, command, data, code, words):
    one_line_error(nlm("vision", command, "-m", classifier, "--data", bad_inputs / data), code, words)


@pytest.mark.parametrize(
    "data, code, words",
    [
        ("corrupt-images-idx3-ubyte.gz", 65, "the file is truncated or corrupt"),
        ("train-images-idx3-ubyte.gz", 65, "has 4 labels but"),
        ("empty", 65, "holds no images"),
        ("missing", 66, "no such file or folder"),
    ],
)
def test_bad_training_data(bad_inputs, data, code, words):
    one_line_error(
        nlm("vision", "train", "--data", bad_inputs / data, "-o", bad_inputs / "run", *TINY_MLP), code, words
    )
    one_line_error(
        nlm("autoencoder", "train", "--data", bad_inputs / data, "-o", bad_inputs / "ae", *TINY_AE), code, words
    )


def test_bad_data_for_an_autoencoder_and_mismatched_validation(autoencoder, bad_inputs):
    one_line_error(
        nlm("autoencoder", "encode", "-m", autoencoder, "--data", bad_inputs / "small.npz", "-o", bad_inputs / "c.npy"),
        65,
        "images are 1x14x14 but the model expects 1x28x28",
    )
    one_line_error(
        nlm("vision", "train", "--valid", bad_inputs / "small.npz", "-o", bad_inputs / "run", *TINY_MLP),
        65,
        "images are 1x14x14 but the model expects 1x28x28",
    )


def test_a_checkpoint_of_another_kind_is_refused(classifier, autoencoder, tiny_corpus, tmp_path):
    lm = nlm(
        "train",
        "--train",
        tiny_corpus[0],
        "-o",
        tmp_path / "lm",
        "--epochs",
        "1",
        "--emb",
        "8",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--bptt",
        "8",
        "-q",
    )
    assert lm.exit_code == 0, lm.stderr
    one_line_error(
        nlm("vision", "eval", "-m", tmp_path / "lm", "--data", "generated:10"),
        65,
        "holds a language model, but this command needs a vision model",
    )
    one_line_error(
        nlm("autoencoder", "encode", "-m", classifier, "--data", "generated:10", "-o", tmp_path / "c.npy"),
        65,
        "holds a vision model, but this command needs an autoencoder",
    )
    one_line_error(
        nlm("vision", "train", "--arch", "mlp", "--init-from", classifier, "-o", tmp_path / "x", "-q"),
        65,
        "holds a vision model",
    )
    one_line_error(nlm("score", "-m", classifier, tiny_corpus[1]), 65, "holds a vision model")
    one_line_error(
        nlm("vision", "eval", "-m", tmp_path / "nowhere", "--data", "generated:10"), 66, "no such checkpoint"
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["vision", "train", "--data", "generated:10"], "needs -o RUN_DIR"),
        (["vision", "train", "--arch", "cnn", "--init-from", "x", "-o", "x"], "use --arch mlp"),
        (
            ["vision", "train", "--conv", "6:5:1,oops", "-o", "x"],
            "conv layer 2 'oops' is not out:kernel:stride:padding",
        ),
        (
            ["vision", "attack", "-m", "x", "--data", "generated:10", "--epsilons", "0,2"],
            "every epsilon must be in [0, 1]",
        ),
        (["autoencoder", "train", "--kind", "stacked", "--hidden", "64", "-o", "x"], "two or more hidden sizes"),
        (["autoencoder", "train", "--hidden", "8,x", "-o", "x"], "--hidden takes sizes separated by commas"),
    ],
)
def test_bad_options_are_exit_code_2(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(nlm(*args), 2, words)


def test_attack_draws_its_examples_and_filters_draw_the_first_layer(classifier, tmp_path):
    result = nlm(
        "vision",
        "attack",
        "-m",
        classifier,
        "--data",
        "generated:200:5",
        "--epsilons",
        "0,0.2",
        "--examples",
        tmp_path / "fgsm.png",
        "--count",
        "3",
        "--any",
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3 and "wrote 3 FGSM examples at epsilon 0.2" in result.stderr
    assert "(rows: clean, sign(grad) x 0.2, adversarial;" in result.stderr
    filters = nlm("vision", "filters", "-m", classifier, "-o", tmp_path / "filters.png", "--count", "4")
    assert filters.exit_code == 0, filters.stderr
    drawn = filters.stderr.split("(")[1].split(")")[0]  # "WIDTHxHEIGHT"
    for name, size in (("fgsm.png", (125 * 3 + 60, 440)), ("filters.png", tuple(map(int, drawn.split("x"))))):
        with Image.open(tmp_path / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size == size, name
    assert "the filters of 4 first-layer units" in filters.stderr
