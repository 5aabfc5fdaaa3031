"""Image sets: IDX, npz and folder loaders with their errors, generated digits, splits, shape checks."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nlm.errors import ConfigError, DataError, InputMissingError
from nlm.images.data import ImageSet, check_shape, generate_digits, load_idx, load_image_folder, load_images, load_npz

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX bytes for a uint8 array: magic 0x0800 + number of dimensions, sizes, payload."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(tmp_path: Path, images: np.ndarray, labels: np.ndarray | None, *, gz: bool) -> Path:
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else (lambda b: b)
    image_path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    image_path.write_bytes(pack(idx_bytes(images)))
    if labels is not None:
        (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(idx_bytes(labels)))
    return image_path


@pytest.fixture
def small() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), np.array([0, 3, 1, 3, 2], dtype=np.uint8)


# --- IDX ---------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_finds_sibling_labels(tmp_path, small, gz):
    images, labels = small
    loaded = load_idx(write_idx(tmp_path, images, labels, gz=gz))
    assert loaded.images.shape == (5, 1, 4, 3) and loaded.images.dtype == torch.uint8
    assert np.array_equal(loaded.images[:, 0].numpy(), images)
    assert loaded.labels.tolist() == [0, 3, 1, 3, 2] and loaded.labels.dtype == torch.int64
    assert loaded.classes == ("0", "1", "2", "3")


def test_idx_gzip_is_detected_by_content_not_name(tmp_path, small):
    path = tmp_path / "pictures.idx"
    path.write_bytes(gzip.compress(idx_bytes(small[0])))
    loaded = load_idx(path)
    assert len(loaded) == 5 and loaded.labels is None and loaded.classes == ()


def test_idx_explicit_labels_path(tmp_path, small):
    images, labels = small
    (tmp_path / "a.idx").write_bytes(idx_bytes(images))
    (tmp_path / "b.idx").write_bytes(idx_bytes(labels))
    assert load_idx(tmp_path / "a.idx", tmp_path / "b.idx").labels.tolist() == labels.tolist()


def corrupt_cases(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[bytes, bytes, str]]:
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    return {
        "images with label magic": (good_labels, good_labels, "magic"),
        "bad magic": (b"\x00\x00\x09\x99" + good_images[4:], good_labels, "magic"),
        "truncated header": (good_images[:10], good_labels, "header"),
        "empty file": (b"", good_labels, "header"),
        "truncated pixels": (good_images[:-1], good_labels, "truncated"),
        "extra pixels": (good_images + b"\x00", good_labels, "header promises"),
        "count mismatch": (good_images, idx_bytes(labels[:4]), "4 labels but"),
        "bad label magic": (good_images, good_images, "magic"),
        "damaged gzip": (gzip.compress(good_images)[:-8], good_labels, "gzip"),
    }


@pytest.mark.parametrize("case", list(corrupt_cases(np.zeros((5, 4, 3)), np.zeros(5))))
def test_idx_corruption_is_a_data_error_naming_the_file(tmp_path, small, case):
    image_bytes, label_bytes, words = corrupt_cases(*small)[case]
    image_path, label_path = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    image_path.write_bytes(image_bytes)
    label_path.write_bytes(label_bytes)
    with pytest.raises(DataError, match=words) as error:
        load_idx(image_path)
    assert "idx" in str(error.value) and str(tmp_path) in str(error.value)
    assert "\n" not in str(error.value)


def test_idx_missing_file(tmp_path):
    with pytest.raises(InputMissingError, match="nope"):
        load_idx(tmp_path / "nope")


# --- npz ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, shape",
    [
        (np.zeros((6, 5, 4), np.uint8), (1, 5, 4)),  # N, H, W
        (np.full((6, 5, 4, 3), 0.5, np.float32), (3, 5, 4)),  # N, H, W, C floats
        (np.zeros((6, 1, 5, 4), np.uint8), (1, 5, 4)),  # N, C, H, W
    ],
)
def test_npz_layouts(tmp_path, x, shape):
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6) % 3)
    loaded = load_npz(tmp_path / "d.npz")
    assert loaded.shape == shape and loaded.images.dtype == torch.uint8
    assert loaded.labels.tolist() == [0, 1, 2, 0, 1, 2] and loaded.classes == ("0", "1", "2")
    if x.dtype == np.float32:
        assert int(loaded.images.max()) == 128


def test_npz_class_names_and_unlabelled(tmp_path):
    np.savez(
        tmp_path / "named.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.array([1, 0]), classes=np.array(["cat", "dog"])
    )
    assert load_npz(tmp_path / "named.npz").classes == ("cat", "dog")
    np.savez(tmp_path / "bare.npz", x=np.zeros((2, 3, 3), np.uint8))
    assert load_npz(tmp_path / "bare.npz").labels is None


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"images": np.zeros((2, 3, 3), np.uint8)}, "no 'x'"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.zeros(3, np.int64)}, "one per image"),
        ({"x": np.full((2, 3, 3), 2.0)}, r"\[0, 1\]"),
        ({"x": np.zeros((2, 3), np.uint8)}, "shape"),
    ],
)
def test_npz_errors(tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=words) as error:
        load_npz(tmp_path / "bad.npz")
    assert "bad.npz" in str(error.value)


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")


# --- image folders -------------------------------------------------------------


def write_png(path: Path, size=(6, 5), mode="L", value=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)


def test_image_folder_classes_sorted(tmp_path):
    for name in ("dog/a.png", "dog/b.png", "cat/c.png", "cat/notes.txt"):
        write_png(tmp_path / name) if name.endswith(".png") else (tmp_path / name).write_text("x")
    loaded = load_image_folder(tmp_path)
    assert loaded.classes == ("cat", "dog") and loaded.labels.tolist() == [0, 1, 1]
    assert loaded.images.shape == (3, 1, 5, 6) and int(loaded.images[0, 0, 0, 0]) == 100


def test_image_folder_rgb_and_forced_grey(tmp_path):
    write_png(tmp_path / "a/x.png", mode="RGB")
    write_png(tmp_path / "b/y.png", mode="L")
    assert load_image_folder(tmp_path).shape == (3, 5, 6)
    assert load_image_folder(tmp_path, channels=1).shape == (1, 5, 6)


def test_image_folder_loose_images_are_unlabelled(tmp_path):
    write_png(tmp_path / "x.png")
    write_png(tmp_path / "y.bmp")
    loaded = load_images(str(tmp_path))
    assert len(loaded) == 2 and loaded.labels is None
    with pytest.raises(DataError, match="no labels"):
        loaded.require_labels()


def test_image_folder_wrong_size_names_the_image(tmp_path):
    write_png(tmp_path / "a/first.png", size=(6, 5))
    write_png(tmp_path / "b/odd.png", size=(7, 5))
    with pytest.raises(DataError, match=r"odd\.png is 5x7 pixels but first\.png is 5x6"):
        load_image_folder(tmp_path)


def test_image_folder_empty_and_unreadable(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "broken" / "cat").mkdir(parents=True)
    (tmp_path / "broken" / "cat" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        load_image_folder(tmp_path / "broken")


# --- generated digits, dispatch, splits, shapes ----------------------------------


def test_generated_digits_deterministic_balanced_in_range():
    first, again, other = generate_digits(300, seed=3), generate_digits(300, seed=3), generate_digits(300, seed=4)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    assert first.images.shape == (300, 1, 28, 28) and first.images.dtype == torch.uint8
    assert torch.bincount(first.labels).tolist() == [30] * 10
    assert first.classes == tuple("0123456789")
    pixels = first.floats()
    assert 0 <= pixels.min() and pixels.max() <= 1 and pixels.max() > 0.6
    ink = (pixels > 0.5).float().mean((1, 2, 3))
    assert 0.01 < ink.min() and ink.max() < 0.5  # every image has a stroke, none is a blot


def test_generated_size_and_noise():
    quiet = generate_digits(20, size=16, noise=0.0, seed=1)
    assert quiet.shape == (1, 16, 16)
    assert (quiet.images == 0).float().mean() > 0.5  # without noise the background is black
    with pytest.raises(ConfigError):
        generate_digits(0)


@pytest.mark.parametrize("spec, n", [("generated:40", 40), ("generated:30:7", 30)])
def test_load_images_generated(spec, n):
    loaded = load_images(spec)
    assert len(loaded) == n and loaded.source == (spec if spec.count(":") == 2 else spec + ":0")


@pytest.mark.parametrize("spec", ["generated:", "generated:x", "generated:5:1:2"])
def test_load_images_bad_generated_spec(spec):
    with pytest.raises(ConfigError, match="generated:N"):
        load_images(spec)


def test_load_images_dispatch(tmp_path, small):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 3), np.uint8))
    assert load_images(str(tmp_path / "d.npz")).shape == (1, 3, 3)
    assert len(load_images(str(write_idx(tmp_path, *small, gz=True)))) == 5
    with pytest.raises(InputMissingError, match="missing.npz"):
        load_images(str(tmp_path / "missing.npz"))


def test_split_is_deterministic_and_disjoint():
    data = ImageSet(torch.arange(20, dtype=torch.uint8).reshape(20, 1, 1, 1), torch.arange(20) % 2, ("a", "b"))
    rest, held = data.split(0.25, seed=5)
    assert (len(rest), len(held)) == (15, 5)
    assert sorted(rest.images.flatten().tolist() + held.images.flatten().tolist()) == list(range(20))
    assert torch.equal(held.images, data.split(0.25, seed=5)[1].images)
    assert len(data.split(3)[1]) == 3
    assert torch.equal(rest.labels, rest.images.flatten().long() % 2)  # labels travel with images
    with pytest.raises(ConfigError):
        data.split(20)


def test_check_shape_message():
    data = ImageSet(torch.zeros(2, 1, 32, 32, dtype=torch.uint8), None, (), "new.npz")
    check_shape(data, (1, 32, 32))
    with pytest.raises(DataError, match="^new.npz: images are 1x32x32 but the model expects 1x28x28$"):
        check_shape(data, (1, 28, 28))


@pytest.mark.data
@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/data/mnist")
def test_real_mnist_training_split():
    mnist = load_images(str(MNIST / "train-images-idx3-ubyte.gz"))
    assert mnist.images.shape == (60000, 1, 28, 28)
    expected = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(mnist.labels).tolist() == expected
