"""The hooks the trainer calls on its callbacks, the only way anything but the task takes part in training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlm.train.trainer import Trainer


class Callback:
    """Hooks the trainer calls, in order, with itself as the first argument; override what you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer) -> None: ...  # after every optimizer step
    def on_loss(
        self, trainer: Trainer, loss: float, steps: int
    ) -> None: ...  # mean training loss of the last `steps` steps
    def on_eval_start(self, trainer: Trainer) -> None: ...  # before an evaluation (NT-ASGD swaps its averages in)
    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any], improved: bool) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...  # a signal stopped training: save, do not evaluate
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...
    def state_dict(self) -> dict:
        return {}  # noqa: E704

    def load_state_dict(self, state: dict) -> None: ...
