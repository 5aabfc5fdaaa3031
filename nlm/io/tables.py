"""Result rows on a text stream: tab-separated values or JSON lines, flushed per row when asked.

TSV fields are escaped the way PostgreSQL's text format does it (`\\t`, `\\n`, `\\r`, `\\\\`),
so a tab inside a sentence never shifts the columns; JSON lines carry text as it is.
Log-probabilities and perplexities are written with 4 decimals in TSV and 6 in JSON;
a value that does not exist (the perplexity of zero tokens) is `nan` in TSV, null in JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TextIO

from nlm.errors import ConfigError

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_field(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value).translate(_ESCAPES)


def tsv_line(row: dict[str, Any]) -> str:
    return "\t".join(tsv_field(v) for v in row.values())


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False)


# The output formats of every command (each takes the ones that fit it): text, lines for people and simple tools;
# tsv, one tab-separated row per record; json, one JSON object per line.  The old names still read as the new.
FORMATS = ("text", "tsv", "json")
OLD_FORMAT_NAMES = {"jsonl": "json", "table": "text"}
ROW_FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {"tsv": tsv_line, "json": jsonl_line}


def text_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Lines of a plain table for people: columns padded with spaces, numbers right-aligned."""
    cells = [header] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(header))]
    return [
        "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric)).rstrip() for row in cells
    ]


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return text == "-"
    return True


class RowWriter:
    """Writes dict rows in one of ROW_FORMATS; with `flush`, each row leaves the process as soon as it is written;
    with `header`, a TSV starts with the names of its columns."""

    def __init__(self, stream: TextIO, *, fmt: str = "tsv", flush: bool = False, header: bool = False) -> None:
        fmt = OLD_FORMAT_NAMES.get(fmt, fmt)
        if fmt not in ROW_FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(ROW_FORMATS)}, not {fmt!r}")
        self.stream, self.format_row, self.flush = stream, ROW_FORMATS[fmt], flush
        self.header = header and fmt == "tsv"  # TSV: a first line naming the columns (JSON names every value)

    def write(self, row: dict[str, Any]) -> None:
        if self.header:
            self.stream.write("\t".join(row) + "\n")
            self.header = False
        self.stream.write(self.format_row(row) + "\n")
        if self.flush:
            self.stream.flush()
