"""`nlm export` from Python: `export_language_model("runs/ptb", output="small.pt", precision="bf16")`.

The work is nlm/lm/export.py's; the result (`Exported`) says what was written and its size."""

from __future__ import annotations

from nlm.lm.export import Exported, export_language_model

__all__ = ["Exported", "export_language_model"]
