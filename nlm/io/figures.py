"""Charts as PNG files, drawn with matplotlib (Agg, no display) and written atomically.

matplotlib is imported inside these functions only, so `import nlm.cli` stays light.
A chart is a list of `Series`; series that share a `group` share a colour, so a run's
training and validation curves match.  `-` as the path writes the PNG to stdout.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlm.errors import DataError
from nlm.io.atomic import write_bytes_atomic

DPI = 100


@dataclass(frozen=True)
class Series:
    label: str  # legend text
    x: Sequence[float]
    y: Sequence[float]
    group: str = ""  # series of one group share a colour; "" gives the series its own
    style: dict = field(default_factory=dict)  # extra matplotlib line options: linestyle, marker...


def new_figure(*, width: float = 6.4, height: float = 4.0, rows: int = 1, columns: int = 1):
    """A matplotlib (figure, axes) on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    return plt.subplots(rows, columns, figsize=(width, height), dpi=DPI, squeeze=False)


def save_figure(figure, path: str | Path) -> tuple[int, int]:
    """Write `figure` as a PNG to `path` (or stdout for `-`), close it, and return (width, height) in pixels."""
    from matplotlib import pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    data = buffer.getvalue()
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_bytes_atomic(path, data)
    return Image.open(io.BytesIO(data)).size


def line_chart(
    series: Sequence[Series], path: str | Path, *, xlabel: str, ylabel: str, title: str = "", log_y: bool = False
) -> tuple[int, int]:
    """One axes of lines with a legend; returns the PNG's (width, height)."""
    if not series or not any(len(s.x) for s in series):
        raise DataError(f"nothing to draw in {path}: every series is empty")
    figure, axes = new_figure()
    ax = axes[0][0]
    colours: dict[str, str] = {}
    cycle = [f"C{i}" for i in range(10)]
    for s in series:
        key = s.group or s.label
        colour = colours.setdefault(key, cycle[len(colours) % len(cycle)])
        ax.plot(list(s.x), list(s.y), label=s.label, color=colour, linewidth=1.5, **s.style)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    return save_figure(figure, path)
