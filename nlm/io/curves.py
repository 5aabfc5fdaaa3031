"""Training curves: the metrics.jsonl of one or more run folders, drawn against step, wall time or epoch.

Every run folder (language model, classifier or autoencoder) gets one line of metrics.jsonl per
evaluation, e.g. `{"epoch": 3, "step": 1200, "train_loss": 4.9, "loss": 5.1, "ppl": 164.0, "lr": 20,
"elapsed": 61.2}`.  A training series comes from `train_loss` (dashed), a validation series from
the metric itself (solid); both of a run share its colour and carry its folder's name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nlm.config import check
from nlm.errors import ConfigError, DataError, InputMissingError
from nlm.io.figures import Series, line_chart
from nlm.units import bits, perplexity

X_AXES = {"step": ("step", "optimizer step"), "time": ("elapsed", "training time (s)"), "epoch": ("epoch", "epoch")}
# The y measures: (a validation row's value, a training row's value from its train_loss or None, axis label).
# `bpc` is bits per symbol: per character for char models, per token for word and subword ones (see y_label).
Y_METRICS = {
    "loss": (lambda r: r.get("loss"), lambda loss: loss, "loss (nats per token or example)"),
    "ppl": (lambda r: r.get("ppl"), perplexity, "perplexity"),
    "bpc": (lambda r: None if (v := _number(r.get("loss"))) is None else bits(v), bits, "bits"),
    "accuracy": (lambda r: r.get("accuracy"), None, "validation accuracy"),
    "mse": (lambda r: r.get("mse"), None, "validation mean squared error"),
}
# What each kind of run measures (meta.json names the kind); another --y would draw numbers that mean something else.
MEASURES = {"lm": ("loss", "ppl", "bpc"), "vision": ("loss", "accuracy"), "autoencoder": ("loss", "mse")}
KINDS = {"lm": "a language model", "vision": "an image classifier", "autoencoder": "an autoencoder"}


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of `run_dir/metrics.jsonl`; a folder without one is InputMissingError."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise InputMissingError(
            f"{run_dir} is not a folder; give run folders written by `nlm train`, `nlm vision train` "
            "or `nlm autoencoder train`"
        )
    if not path.exists():
        raise InputMissingError(
            f"{run_dir} has no metrics.jsonl; it is not a run folder, or no evaluation has finished in it yet"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: not a JSON object")
        rows.append(row)
    return rows


def _number(value) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def _points(rows: list[dict], x_key: str, y_of) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        x, y = _number(row.get(x_key)), y_of(row)
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def run_kind(run_dir: str | Path) -> tuple[str | None, str | None]:
    """(kind, vocabulary level) of a run, from its meta.json and config.json; None for what they do not say."""
    kind = level = None
    meta, config = Path(run_dir) / "meta.json", Path(run_dir) / "config.json"
    if meta.is_file():
        kinds = {c.get("kind") for c in json.loads(meta.read_text(encoding="utf-8")).get("checkpoints", {}).values()}
        kind = kinds.pop() if len(kinds) == 1 else None
    if config.is_file():
        recorded = json.loads(config.read_text(encoding="utf-8"))
        level = (recorded.get("vocab") or {}).get("level")
        if level is None and (recorded.get("vocab_file") or {}).get("path") is None:  # older: built from vocab_config
            level = (recorded.get("vocab_config") or {}).get("level")
    return kind, level


def check_measure(run_dir: str | Path, y: str) -> str | None:
    """The run's vocabulary level; ConfigError when `y` is not a measure of the run's kind of model."""
    kind, level = run_kind(run_dir)
    if kind in MEASURES and y not in MEASURES[kind]:
        raise ConfigError(
            f"--y {y} does not apply to {run_dir}, the run of {KINDS[kind]}; "
            f"its measures are {', '.join(MEASURES[kind])}"
        )
    return level


def y_label(y: str, levels: list[str | None]) -> str:
    """The axis label: bits per character for char models, per token for word and subword models."""
    if y != "bpc":
        return Y_METRICS[y][2]
    if all(level == "char" for level in levels):
        return "bits per character"
    if all(level not in ("char", None) for level in levels):
        return "bits per token"
    return "bits per character (char models) or per token"


def run_series(run_dir: str | Path, *, x: str, y: str, name: str | None = None) -> list[Series]:
    """The training (if the metric has one) and validation series of one run, labelled `name` (or the folder's)."""
    rows, name = read_metrics(run_dir), name or Path(run_dir).resolve().name
    x_key = X_AXES[x][0]
    valid_of, from_train_loss, _ = Y_METRICS[y]
    series = []
    if from_train_loss is not None:
        xs, ys = _points(
            rows, x_key, lambda r: None if (v := _number(r.get("train_loss"))) is None else from_train_loss(v)
        )
        if xs:
            series.append(Series(f"{name} train", xs, ys, group=name, style={"linestyle": "--"}))
    xs, ys = _points([r for r in rows if r.get("split", "valid") == "valid"], x_key, lambda r: _number(valid_of(r)))
    if xs:
        series.append(Series(f"{name} valid", xs, ys, group=name, style={"marker": "o", "markersize": 3}))
    if not series:
        found = sorted({k for r in rows for k, v in r.items() if _number(v) is not None})
        raise DataError(
            f"{run_dir}/metrics.jsonl has no {y!r} against {x!r} (its rows have {', '.join(found) or 'nothing'})"
        )
    return series


def plot_training_curves(
    run_dirs: list[str | Path], path: str | Path, *, x: str = "step", y: str = "loss", log_y: bool = False
) -> tuple[int, int, str]:
    """Draw the curves of every run in one chart; returns the PNG's (width, height) and its vertical axis's label."""
    check(x in X_AXES, f"--x must be one of {', '.join(X_AXES)}, not {x!r}")
    check(y in Y_METRICS, f"--y must be one of {', '.join(Y_METRICS)}, not {y!r}")
    check(len(run_dirs) >= 1, "give at least one run folder")
    levels = [check_measure(run_dir, y) for run_dir in run_dirs]
    names = [Path(run_dir).resolve().name for run_dir in run_dirs]
    names = [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, run_dirs)]
    series = [s for run_dir, name in zip(run_dirs, names) for s in run_series(run_dir, x=x, y=y, name=name)]
    label = y_label(y, levels)
    width, height = line_chart(
        series,
        path,
        xlabel=X_AXES[x][1],
        ylabel=label,
        log_y=log_y,
        title="training (dashed) and validation (solid)" if any(s.label.endswith(" train") for s in series) else "",
    )
    return width, height, label
