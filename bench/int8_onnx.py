"""Evaluation: would ONNX Runtime's int8 (dynamic quantization, its quantized LSTM) beat bf16 for scoring?

    pip install onnxruntime onnx        # not nlm's dependencies: this evaluation's alone
    python bench/int8_onnx.py -m runs/bench/equal-time/ptb-25min [TEXT] [--rounds 5]

The part of a trained nlm model that holds its arithmetic: the embedding, the recurrent layers (a
fused `nn.LSTM`/`nn.GRU`) and the output layer that every token pays for (the full softmax, or the
adaptive head's cluster of frequent words), then a float32 log-softmax; batches of 64 x 35 tokens
of TEXT (PTB's validation split by default).  Four ways, taking turns, one thread each, CPU time,
medians of `--rounds`: torch in fp32, torch under bf16 autocast (what `--precision bf16` runs), ONNX
Runtime in fp32, and ONNX Runtime after `quantize_dynamic` (int8 weights: DynamicQuantizeLSTM,
MatMulInteger).  Also the largest difference of a log-prob from torch fp32's, for bf16 and int8.
The model's own weights are used, so the differences are those a trained model would see.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import data_file, machine
from torch import nn

from nlm.lm.loading import load_language_model


class Body(nn.Module):
    """Embedding, recurrent layers and the output layer every token pays for, then a float32 log-softmax."""

    def __init__(self, model) -> None:
        super().__init__()
        self.embedding, self.rnn = model.embedding, model.rnn
        self.head = model.decoder.head if model.config.softmax == "adaptive" else model.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.embedding(x))
        return torch.log_softmax(self.head(output.contiguous()).float(), dim=-1)


def batches(lm, text: Path, count: int) -> list[torch.Tensor]:
    ids = [i for line in text.read_text(encoding="utf-8").splitlines() for i in (*lm.vocab.encode(line), 3)]
    size = 64 * 35
    return [torch.tensor(ids[k * size : (k + 1) * size]).view(64, 35) for k in range(min(count, len(ids) // size))]


def cpu_ms(run, inputs: list, repeat: int = 1) -> float:
    run(inputs[0])
    start = time.process_time()
    for _ in range(repeat):
        for x in inputs:
            run(x)
    return (time.process_time() - start) / (repeat * len(inputs)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("text", nargs="?", type=Path, default=None, help="text [PTB validation]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4, help="batches of 64 x 35 tokens per timing")
    args = parser.parse_args()
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        sys.exit("this evaluation needs ONNX Runtime: pip install onnxruntime onnx")
    torch.set_num_threads(1)
    lm = load_language_model(args.model)
    if lm.model_config.per_layer:
        sys.exit("this evaluation reads a fused recurrent module; the model uses the per-layer stack (AWD options)")
    body = Body(lm.model).eval()
    inputs = batches(lm, args.text or data_file("ptb/ptb.valid.txt"), args.batches)
    folder = Path(tempfile.mkdtemp(prefix="nlm-int8-"))
    fp32_file, int8_file = folder / "body.onnx", folder / "body.int8.onnx"
    torch.onnx.export(body, (inputs[0],), fp32_file, input_names=["x"], output_names=["y"], dynamo=False)
    quantize_dynamic(str(fp32_file), str(int8_file), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = {name: ort.InferenceSession(str(f), options) for name, f in (("fp32", fp32_file), ("int8", int8_file))}

    def torch_run(x, bf16=False):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return body(x)

    ways = {
        "torch fp32": torch_run,
        "torch bf16 (autocast)": lambda x: torch_run(x, bf16=True),
        "ONNX Runtime fp32": lambda x: torch.from_numpy(sessions["fp32"].run(None, {"x": x.numpy()})[0]),
        "ONNX Runtime int8": lambda x: torch.from_numpy(sessions["int8"].run(None, {"x": x.numpy()})[0]),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(args.rounds):
        for name in list(ways) if round_ % 2 == 0 else list(ways)[::-1]:
            times[name].append(cpu_ms(ways[name], inputs))
    reference = [torch_run(x) for x in inputs]
    print(f"machine: {machine()}; model {lm.signature}; {len(inputs)} batches of 64 x 35 tokens, one thread")
    print("| way | ms per batch (median) | vs torch fp32 | largest log-prob difference |\n|---|---:|---:|---:|")
    base = statistics.median(times["torch fp32"])
    for name, run in ways.items():
        ms = statistics.median(times[name])
        difference = max(float((run(x).float() - r).abs().max()) for x, r in zip(inputs, reference))
        print(f"| {name} | {ms:.1f} | {base / ms:.2f}x | {difference:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
