"""int8 recurrent layers through ONNX Runtime: `nlm export --precision int8`, and the module that runs them.

The recurrent layers of a trained model (a fused `nn.LSTM`, `nn.GRU` or `nn.RNN`) are exported to
ONNX by torch's exporter, with the state carried in and out, and quantized by ONNX Runtime's
dynamic quantization: int8 weights, activations quantized per call (`DynamicQuantizeLSTM` for an
LSTM).  The embedding and the output layer stay in torch, at whatever `--precision` a command asks
for, and so do the log-softmax and every sum (float32).  ONNX Runtime, onnx and onnxscript are an
optional extra (`pip install 'nlm[int8]'`); without them only int8 export and loading are refused.
The per-layer stack of the AWD-LSTM options (weight drop, locked dropout, a last layer of its own
size) is not a fused module and is refused; int8 runs on the CPU only.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from nlm.errors import CheckpointError, ConfigError, NLMError
from nlm.models.rnn import RNNLM, RNNConfig

ENGINE = ("onnxruntime", "onnx", "onnxscript")


class EngineMissing(NLMError):
    """The optional int8 engine (ONNX Runtime) is not installed (exit 69, as for a device the machine lacks)."""

    exit_code = 69


def _engine():
    try:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise EngineMissing(
            "int8 runs on ONNX Runtime, which is not installed: pip install 'nlm[int8]' "
            "(onnxruntime, onnx, onnxscript), or use --precision bf16"
        ) from None
    return onnxruntime, quantize_dynamic, quant_pre_process, QuantType


class _Body(nn.Module):
    """The recurrent layers as ONNX sees them: inputs and state in, outputs and state out, as plain tensors."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output, new = self.rnn(x, tuple(state) if len(state) == 2 else state[0])
        return (output, *new) if isinstance(new, tuple) else (output, new)


def quantized_recurrent(model: RNNLM) -> bytes:
    """The model's recurrent layers as an ONNX model with int8 weights (its bytes)."""
    config = model.config
    if config.per_layer:
        raise ConfigError(
            "--precision int8 quantizes a fused recurrent module; this model has the per-layer stack of the "
            "AWD-LSTM options (weight drop, locked dropout or --last-hidden): export it in bf16 instead"
        )
    _, quantize_dynamic, quant_pre_process, quant_type = _engine()
    batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps")
    x = torch.zeros(2, 3, config.emb)
    state = _zero_state(config, 2)
    names = ["h0", "c0"][: len(state)]
    shapes = {"x": {0: batch, 1: steps}, "state": tuple({1: batch} for _ in state)}
    with tempfile.TemporaryDirectory(prefix="nlm-int8-") as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals, not the user's business
        exported, prepared, quantized = (Path(folder) / n for n in ("body.onnx", "pre.onnx", "int8.onnx"))
        torch.onnx.export(
            _Body(model.rnn).eval(),
            (x, *state),
            exported,
            dynamo=True,
            input_names=["x", *names],
            output_names=["y", *[n.replace("0", "") for n in names]],
            dynamic_shapes=shapes,
            verbose=False,
        )
        quant_pre_process(str(exported), str(prepared))  # folds the weights into initializers the quantizer finds
        quantize_dynamic(str(prepared), str(quantized), weight_type=quant_type.QInt8)
        return quantized.read_bytes()


def _zero_state(config: RNNConfig, batch: int) -> tuple[torch.Tensor, ...]:
    h = torch.zeros(config.layers, batch, config.hidden)
    return (h, h.clone()) if config.cell == "lstm" else (h,)


class Int8Recurrent(nn.Module):
    """Stands in for a model's fused recurrent module: `forward(x [B, T, E], state) -> (output, state)` on
    ONNX Runtime, with the int8 layers of `quantized_recurrent`; no gradients."""

    def __init__(self, onnx_model: bytes, config: RNNConfig) -> None:
        super().__init__()
        onnxruntime = _engine()[0]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # nlm --threads, or one per process under torchrun
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
        self.config = config
        self.inputs = [i.name for i in self.session.get_inputs()]

    def forward(self, x: torch.Tensor, state=None):
        if torch.is_grad_enabled() and x.requires_grad:
            raise CheckpointError("an int8 export computes no gradients: use the run it was exported from")
        if x.device.type != "cpu":
            raise ConfigError("an int8 export runs on the CPU only: use --device cpu")
        state = _zero_state(self.config, x.size(0)) if state is None else state
        tensors = (x, *(state if isinstance(state, tuple) else (state,)))
        feed = {name: t.detach().float().contiguous().numpy() for name, t in zip(self.inputs, tensors)}
        output, *new = (torch.from_numpy(a) for a in self.session.run(None, feed))
        return output, (tuple(new) if len(new) == 2 else new[0])
