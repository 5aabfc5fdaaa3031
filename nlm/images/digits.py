"""Procedurally drawn digits 0-9: a handwriting-like image set nlm generates itself.

Each digit is a few strokes (polylines) in a glyph box that is 1 unit tall, centred
on the origin, y pointing down.  Every image gets its own smooth wobble, slant,
rotation, scale, shift, stroke width and ink, and then pixel noise, so a linear
model cannot learn a template per class while a small CNN can.

Drawing is vectorised: a pixel's ink is a function of its distance to the nearest
stroke segment, computed for all images at once, so 10,000 images take about a second.
"""

from __future__ import annotations

import functools
import math

import torch

from nlm.config import check
from nlm.io.pixels import to_uint8

Point = tuple[float, float]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 10) -> list[Point]:
    """Points on an elliptic arc; angles in degrees, 0 = right, 90 = down (y points down)."""
    angles = [math.radians(start + (end - start) * i / steps) for i in range(steps + 1)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each digit has one or more styles; a style is a list of strokes; a stroke is a polyline.
GLYPHS: dict[int, list[list[list[Point]]]] = {
    0: [[_arc(0, 0, 0.3, 0.5, 0, 360, 16)]],
    1: [[[(0.02, -0.5), (0.0, 0.5)]], [[(-0.16, -0.32), (0.04, -0.5), (0.0, 0.5)]]],
    2: [[_arc(0, -0.22, 0.27, 0.27, -170, 25) + [(-0.3, 0.5), (0.3, 0.5)]]],
    3: [[_arc(0, -0.26, 0.25, 0.24, -160, 90, 8) + _arc(0, 0.24, 0.29, 0.26, -90, 155, 8)]],
    4: [
        [[(0.12, 0.5), (0.12, -0.5), (-0.3, 0.18), (0.3, 0.18)]],
        [[(-0.22, -0.5), (-0.28, 0.12), (0.3, 0.12)], [(0.14, -0.3), (0.14, 0.5)]],
    ],
    5: [[[(0.28, -0.5), (-0.2, -0.5), (-0.24, -0.06)] + _arc(0, 0.2, 0.29, 0.3, -120, 150, 10)]],
    6: [[[(0.22, -0.5)] + _arc(0.02, 0.2, 0.28, 0.3, -160, 200, 14)]],
    7: [
        [[(-0.3, -0.5), (0.3, -0.5), (-0.06, 0.5)]],
        [[(-0.3, -0.5), (0.3, -0.5), (-0.06, 0.5)], [(-0.1, 0.0), (0.2, 0.0)]],
    ],
    8: [[_arc(0, -0.27, 0.22, 0.23, 90, 450, 12), _arc(0, 0.23, 0.28, 0.27, -90, 270, 12)]],
    9: [
        [_arc(0, -0.22, 0.27, 0.28, 20, 380, 12) + [(0.26, -0.12), (0.1, 0.5)]],
        [_arc(0, -0.22, 0.27, 0.28, 20, 380, 12) + [(0.27, 0.1)] + _arc(0.0, 0.1, 0.27, 0.4, 0, 110, 5)],
    ],
}


@functools.cache
def _segment_table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All styles as one tensor of segments [styles, S, 2 ends, 2 coords], padded by repeating
    a style's last segment (a duplicate never changes a nearest distance), plus each style's
    digit [styles] and each digit's first style and style count [10, 2]."""
    styles, digits, ranges = [], [], []
    for digit in range(10):
        ranges.append((len(styles), len(GLYPHS[digit])))
        for strokes in GLYPHS[digit]:
            styles.append([(a, b) for stroke in strokes for a, b in zip(stroke, stroke[1:])])
            digits.append(digit)
    width = max(len(s) for s in styles)
    padded = [s + [s[-1]] * (width - len(s)) for s in styles]
    return torch.tensor(padded), torch.tensor(digits), torch.tensor(ranges)


def _uniform(n: int, low: float, high: float, rng: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=rng)


def _place_strokes(segments: torch.Tensor, size: int, rng: torch.Generator) -> torch.Tensor:
    """Move each image's glyph segments [N, S, 2, 2] from glyph units to pixel coordinates."""
    n = segments.shape[0]
    points = segments.reshape(n, -1, 2)  # [N, 2S, 2], (x, y)
    # 1. a smooth wobble: each coordinate bends with a sine of the other one
    amp = _uniform(n, 0.0, 0.06, rng)[:, None]
    freq = _uniform(n, 2.0, 5.0, rng)[:, None]
    phase = _uniform(n * 2, 0.0, 2 * math.pi, rng).reshape(n, 2)
    x, y = points[..., 0], points[..., 1]
    x = x + amp * torch.sin(freq * y + phase[:, :1])
    y = y + amp * torch.sin(freq * x + phase[:, 1:])
    # 2. an affine map per image: slant, rotation, width and height, in pixels
    angle = torch.deg2rad(_uniform(n, -15, 15, rng))
    slant = _uniform(n, -0.3, 0.3, rng)
    height = _uniform(n, 0.55, 0.75, rng) * size
    width = height * _uniform(n, 0.75, 1.2, rng)
    x, y = (x - slant[:, None] * y) * width[:, None], y * height[:, None]
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y = cos * x - sin * y, sin * x + cos * y
    # 3. a shift from the centre, up to a tenth of the image each way
    shift = _uniform(n * 2, -0.1, 0.1, rng).reshape(n, 2) * size
    x = x + size / 2 + shift[:, :1]
    y = y + size / 2 + shift[:, 1:]
    return torch.stack([x, y], dim=-1).reshape(segments.shape)


def _ink(segments: torch.Tensor, size: int, thickness: torch.Tensor) -> torch.Tensor:
    """Anti-aliased strokes [N, size*size] in [0, 1] from pixel-space segments [N, S, 2, 2]."""
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    gy, gx = (g.flatten() for g in torch.meshgrid(centres, centres, indexing="ij"))  # [P] each
    nearest = torch.full((segments.shape[0], size * size), float("inf"))  # squared distances
    for s in range(segments.shape[1]):  # a running min keeps memory at [N, P]
        ax, ay = segments[:, s, 0, 0, None], segments[:, s, 0, 1, None]  # [N, 1]
        abx, aby = segments[:, s, 1, 0, None] - ax, segments[:, s, 1, 1, None] - ay
        inverse_length2 = 1 / (abx * abx + aby * aby).clamp_min(1e-6)
        dx, dy = gx - ax, gy - ay  # [N, P], pixel minus segment start
        # t: where the pixel projects onto the segment, clamped to its ends (in-place for speed)
        t = (dx * abx).addcmul_(dy, aby).mul_(inverse_length2).clamp_(0, 1)
        dx.addcmul_(t, abx, value=-1).square_()
        dy.addcmul_(t, aby, value=-1).square_()
        torch.minimum(nearest, dx.add_(dy), out=nearest)
    # full ink within half the stroke width, fading to none over one pixel
    return (thickness[:, None] / 2 + 0.5 - nearest.sqrt_()).clamp_(0, 1)


def draw_digits(labels: torch.Tensor, *, size: int, noise: float, rng: torch.Generator) -> torch.Tensor:
    """Draw one digit per label [N] as uint8 images [N, 1, size, size]."""
    table, _, ranges = _segment_table()
    n = labels.shape[0]
    first, count = ranges[labels, 0], ranges[labels, 1]
    style = first + (torch.rand(n, generator=rng) * count).long()
    segments = _place_strokes(table[style], size, rng)
    thickness = _uniform(n, 1.2, 2.6, rng) * size / 28
    ink = _ink(segments, size, thickness) * _uniform(n, 0.7, 1.0, rng)[:, None]
    pixels = ink + noise * torch.randn(ink.shape, generator=rng)
    return to_uint8(pixels).reshape(n, 1, size, size)


def generate_digit_tensors(
    n: int, *, size: int = 28, seed: int = 0, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` digit images uint8 [n, 1, size, size] and labels int64 [n] (each digit n//10 or
    n//10 + 1 times, in random order), the same on every run for the same arguments."""
    check(n >= 1, f"generated data needs at least one image, not {n}")
    check(size >= 8, f"generated digits need a size of at least 8 pixels, not {size}")
    check(0 <= noise <= 1, f"pixel noise must be between 0 and 1, not {noise}")
    rng = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=rng)]
    chunks = [draw_digits(part, size=size, noise=noise, rng=rng) for part in labels.split(512)]
    return torch.cat(chunks), labels
