"""Labelled image sets and the loaders behind every `--data` spec: IDX, npz, folders, generated digits.

Every loader returns an `ImageSet` of uint8 images [N, C, H, W]; a file that cannot be
used raises DataError with one sentence naming it, a missing one InputMissingError.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlm.config import check
from nlm.errors import ConfigError, DataError, InputMissingError
from nlm.images.digits import generate_digit_tensors
from nlm.io.pixels import to_floats, to_uint8

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: count, rows, cols
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: count
GZIP_MAGIC = b"\x1f\x8b"
GENERATED_PREFIX = "generated:"
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images with optional labels; `labels` is None for inputs that are only to be predicted."""

    images: torch.Tensor  # uint8 [N, C, H, W], 0..255
    labels: torch.Tensor | None  # int64 [N], each an index into `classes`; None when unlabelled
    classes: tuple[str, ...]  # class names, label i is classes[i]; () when unlabelled
    source: str = ""  # the spec or file it came from, for messages

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"{self.source}: images must be uint8 [N, C, H, W], got {self.images.dtype} {list(self.images.shape)}"
            )
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise DataError(f"{self.source}: {len(self.images)} images but {len(self.labels)} labels")
        if self.labels is not None and len(self.labels) and int(self.labels.max()) >= len(self.classes):
            raise DataError(f"{self.source}: label {int(self.labels.max())} but only {len(self.classes)} classes")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def floats(self) -> torch.Tensor:
        """The images as float32 [N, C, H, W] in [0, 1]."""
        return to_floats(self.images)

    def subset(self, index: torch.Tensor) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels, self.classes, self.source)

    def split(self, holdout: float | int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """(rest, held out): `holdout` is a fraction in (0, 1) or a count; the same for a seed."""
        n = len(self)
        count = round(holdout * n) if isinstance(holdout, float) and holdout < 1 else int(holdout)
        check(0 < count < n, f"cannot hold out {holdout} of {n} images; leave at least one on each side")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self.subset(order[count:]), self.subset(order[:count])

    def require_labels(self) -> torch.Tensor:
        """The labels, or a DataError saying that training and evaluation need them."""
        if self.labels is None:
            raise DataError(f"{self.source} has no labels; training and evaluation need labelled images")
        return self.labels


def check_shape(images: ImageSet, expected: tuple[int, int, int]) -> None:
    """Raise DataError unless one image is (C, H, W) = expected, the model's input shape."""
    if tuple(images.shape) != tuple(expected):
        have, want = ("x".join(map(str, s)) for s in (images.shape, expected))
        raise DataError(f"{images.source}: images are {have} but the model expects {want}")


def _numbered_classes(labels: torch.Tensor | None) -> tuple[str, ...]:
    return () if labels is None or not len(labels) else tuple(str(i) for i in range(int(labels.max()) + 1))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    if not path.is_file():
        raise InputMissingError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        raise DataError(f"{path} is a damaged gzip file; download it again") from None


def _read_idx(path: Path, magic: int, dims: int) -> tuple[tuple[int, ...], bytes]:
    """An IDX file's dimensions and payload, checking magic, header and payload length."""
    data = _read_bytes(path)
    header = 4 + 4 * dims
    too_short = f"{path} is too short for an IDX header ({len(data)} bytes); it is truncated or not IDX"
    if len(data) < 4:
        raise DataError(too_short)
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kinds = {IDX_IMAGES_MAGIC: "an IDX images file", IDX_LABELS_MAGIC: "an IDX labels file"}
        seen = kinds.get(found, "not an IDX file of unsigned bytes")
        raise DataError(f"{path} has magic {found:#010x} ({seen}) where {kinds[magic]} ({magic:#010x}) was expected")
    if len(data) < header:
        raise DataError(too_short)
    shape = struct.unpack(f">{dims}I", data[4:header])
    expected = math.prod(shape)
    if len(data) - header != expected:
        raise DataError(
            f"{path} holds {len(data) - header} bytes of data but its header promises "
            f"{'x'.join(map(str, shape))} = {expected}; the file is truncated or corrupt"
        )
    return shape, data[header:]


def _sibling_labels(images_path: Path) -> Path | None:
    """train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz], if that file exists."""
    if "images-idx3" not in images_path.name:
        return None
    name = images_path.name.replace("images-idx3", "labels-idx1")
    for candidate in (name, name + ".gz", name.removesuffix(".gz")):
        if (images_path.parent / candidate).is_file():
            return images_path.parent / candidate
    return None


def load_idx(images_path: str | Path, labels_path: str | Path | None = None) -> ImageSet:
    """MNIST-format IDX images (and labels: the given file, else the sibling labels file, else none)."""
    images_path = Path(images_path)
    (count, rows, cols), pixels = _read_idx(images_path, IDX_IMAGES_MAGIC, 3)
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(count, 1, rows, cols)
    labels_path = Path(labels_path) if labels_path is not None else _sibling_labels(images_path)
    labels = None
    if labels_path is not None:
        (label_count,), raw = _read_idx(labels_path, IDX_LABELS_MAGIC, 1)
        if label_count != count:
            raise DataError(f"{labels_path} has {label_count} labels but {images_path} has {count} images")
        labels = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
    return ImageSet(images, labels, _numbered_classes(labels), str(images_path))


def _npz_images(x: np.ndarray, path: Path) -> torch.Tensor:
    """uint8 [N, C, H, W] from x as [N, H, W], [N, H, W, C] or [N, C, H, W], uint8 or floats in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # channels last -> channels first
    elif x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise DataError(
            f"{path}: x has shape {list(x.shape)}; expected [N, H, W] or [N, H, W, C] or [N, C, H, W] with C in 1, 3, 4"
        )
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(1))[0])
        raise DataError(
            f"{path}: x holds NaN or infinite values (image {bad} is the first); pixels must be numbers in [0, 1]"
        )
    if np.issubdtype(x.dtype, np.floating) and x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"{path}: x holds floats from {x.min():g} to {x.max():g}; floats must lie in [0, 1] (or store uint8)"
        )
    if np.issubdtype(x.dtype, np.floating):
        return to_uint8(torch.from_numpy(np.ascontiguousarray(x)))
    raise DataError(f"{path}: x has dtype {x.dtype}; store uint8 pixels or floats in [0, 1]")


def load_npz(path: str | Path) -> ImageSet:
    """Images from array `x` and integer labels from `y` (optional; class names from `classes` if present)."""
    path = Path(path)
    if not path.is_file():
        raise InputMissingError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            found = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zlib.error) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    if "x" not in found:
        raise DataError(f"{path} has arrays {sorted(found)} but no 'x'; save the images as x= (and labels as y=)")
    images = _npz_images(found["x"], path)
    labels, classes = None, ()
    if "y" in found:
        y = found["y"]
        if y.shape != (len(images),) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise DataError(
                f"{path}: y must be {len(images)} non-negative integers, one per image in x, "
                f"not {y.dtype} {list(y.shape)}"
            )
        labels = torch.from_numpy(y.astype(np.int64))
        names = found.get("classes")
        classes = tuple(str(c) for c in names) if names is not None else _numbered_classes(labels)
    return ImageSet(images, labels, classes, str(path))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}  # Pillow modes read as one channel


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_image(path: Path, channels: int | None) -> np.ndarray:
    """One image as uint8 [H, W, C], converted to grey (C=1) or RGB (C=3)."""
    from PIL import Image, UnidentifiedImageError  # Pillow only when a folder is read

    try:
        with Image.open(path) as image:
            if channels is None:
                channels = 1 if image.mode in GRAY_MODES else 3
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} cannot be read as an image ({e}); remove it or replace it") from None
    return pixels.reshape(*pixels.shape[:2], channels)


def load_image_folder(path: str | Path, *, channels: int | None = None) -> ImageSet:
    """One sub-folder per class (names sorted), or loose images for an unlabelled set.

    Every image is converted to `channels` (1 = grey, 3 = RGB; None = grey if the first
    image is grey, else RGB) and must have the first image's size.
    """
    path = Path(path)
    check(channels in (None, 1, 3), f"channels must be 1 (grey) or 3 (RGB), not {channels}")
    if not path.is_dir():
        raise InputMissingError(f"{path}: no such folder")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    groups = [(d.name, _image_files(d)) for d in class_dirs] if class_dirs else [("", _image_files(path))]
    files = [(index, f) for index, (_, group) in enumerate(groups) for f in group]
    if not files:
        where = "its class sub-folders" if class_dirs else "it"
        raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {where}")
    first = _read_image(files[0][1], channels)
    arrays = [first]
    for _, file in files[1:]:
        pixels = _read_image(file, first.shape[2])
        if pixels.shape != first.shape:
            raise DataError(
                f"{file} is {pixels.shape[0]}x{pixels.shape[1]} pixels but {files[0][1].name} is "
                f"{first.shape[0]}x{first.shape[1]}; all images must have one size (height x width)"
            )
        arrays.append(pixels)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # [N, C, H, W]
    if not class_dirs:
        return ImageSet(images, None, (), str(path))
    labels = torch.tensor([index for index, _ in files], dtype=torch.int64)
    return ImageSet(images, labels, tuple(name for name, _ in groups), str(path))


def parse_generated_spec(spec: str) -> tuple[int, int]:
    """`generated:N[:SEED]` -> (N, SEED)."""
    parts = spec.removeprefix(GENERATED_PREFIX).split(":")
    try:
        if not 1 <= len(parts) <= 2:
            raise ValueError
        count, seed = int(parts[0]), int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ConfigError(
            f"{spec!r}: generated data is written generated:N or generated:N:SEED, e.g. generated:6000:1"
        ) from None
    return count, seed


def generate_digits(n: int, *, size: int = 28, seed: int = 0, noise: float = 0.1) -> ImageSet:
    """`n` procedurally drawn digits 0-9, one channel, size x size, balanced labels; see digits.py."""
    images, labels = generate_digit_tensors(n, size=size, seed=seed, noise=noise)
    return ImageSet(images, labels, DIGIT_CLASSES, f"{GENERATED_PREFIX}{n}:{seed}")


def load_images(spec: str, *, channels: int | None = None) -> ImageSet:
    """The one entry point for `--data`: `generated:N[:SEED]`, a folder, a `.npz`, or an IDX file."""
    if spec.startswith(GENERATED_PREFIX):
        count, seed = parse_generated_spec(spec)
        return generate_digits(count, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise InputMissingError(f"{path}: no such file or folder")
    if path.is_dir():
        return load_image_folder(path, channels=channels)
    return load_npz(path) if path.suffix == ".npz" else load_idx(path)
