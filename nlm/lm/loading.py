"""Loading a trained language model from its checkpoint alone: network, vocabulary, configs, signature."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from nlm.errors import CheckpointError
from nlm.io.checkpoint import inconsistent_checkpoint, load_checkpoint, resolve_checkpoint
from nlm.io.text import file_sha256
from nlm.lm.config import LMDataConfig
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.runtime import autocast, check_model_fits, pick_precision
from nlm.text.symbols import SPECIALS
from nlm.text.vocab import Vocabulary
from nlm.text.vocab_files import vocab_from_state


@dataclass(frozen=True)
class LoadedLM:
    """A language model ready for inference: `model` is in eval mode on `device`."""

    model: RNNLM
    vocab: Vocabulary
    model_config: RNNConfig
    data_config: LMDataConfig
    path: Path  # the checkpoint file (a run folder resolved to its best.pt or last.pt)
    device: torch.device
    digest: str  # first 12 hex digits of the checkpoint file's sha256
    precision: str = "fp32"  # fp32 or bf16: how the model computes (nlm.runtime); the weights are float32 either way
    int8: bool = False  # its recurrent layers are an int8 export's, on ONNX Runtime (nlm/lm/int8.py)

    @property
    def start_id(self) -> int:
        """What a sentence is conditioned on: <eos> for stream-trained models, <bos> for sentence-trained ones."""
        return self.data_config.start_id

    @property
    def start_symbol(self) -> str:
        return SPECIALS[self.start_id]

    @property
    def signature(self) -> str:
        """Which model, vocabulary and precision produced a number:
        `model:best.pt#1a2b3c4d5e6f|vocab:word-1000#9f8e7d6c5b4a|precision:fp32`."""
        vocab = f"{self.vocab.level}-{len(self.vocab)}#{self.vocab.fingerprint()}"
        precision = f"int8+{self.precision}" if self.int8 else self.precision  # int8 recurrent layers, the rest so
        return f"model:{self.path.name}#{self.digest}|vocab:{vocab}|precision:{precision}"

    def autocast(self):
        """The context the model computes in: bf16 autocast for precision bf16, nothing for fp32."""
        return autocast(self.device, self.precision)


def load_language_model(path: str | Path, *, device: str | torch.device = "cpu", precision: str = "fp32") -> LoadedLM:
    """Load the language model in `path` (a checkpoint file or a run folder) for scoring or generation, to compute
    in `precision` (fp32, bf16, or auto: bf16 where the device does it natively; see nlm.runtime).

    Raises InputMissingError when there is no such file, and CheckpointError when the file
    is not an nlm checkpoint, holds another kind of model, or does not match its own config.
    """
    file = resolve_checkpoint(path)
    payload = load_checkpoint(file, kind="lm")
    try:
        model_config = RNNConfig.from_dict(payload["config"]["model"])
        data_config = LMDataConfig.from_dict(payload["config"]["data"])
        vocab = vocab_from_state(payload["vocab"])
        model = check_model_fits(partial(RNNLM, model_config))
        if "int8" in payload:  # `nlm export --precision int8`: the recurrent layers run on ONNX Runtime
            from nlm.lm.int8 import Int8Recurrent

            model.rnn = Int8Recurrent(payload["int8"]["onnx"], model_config)
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise inconsistent_checkpoint(file, e) from None
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(
            f"{file}: its vocabulary has {len(vocab)} symbols but its model {model_config.vocab_size}"
        )
    device = torch.device(device)
    model.to(device).eval()
    return LoadedLM(
        model=model,
        vocab=vocab,
        model_config=model_config,
        data_config=data_config,
        path=file,
        device=device,
        digest=file_sha256(file)[:12],
        precision=pick_precision(precision, device),
        int8="int8" in payload,
    )
