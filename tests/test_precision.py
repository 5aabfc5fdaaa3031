"""--precision: what `auto` picks (from the CPU's own flags), bf16 against fp32 within a tolerance on any CPU (it runs
everywhere, emulated where the CPU lacks bf16), every signature and config.json naming the precision, the old --bf16
spelling, and `nlm export`'s small checkpoint that every command loads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import nlm, one_line_error
from lm_helpers import HEADS, SOURCE, session_root, tiny_word_lm, train_tiny_lm

import nlm as nlm_api
from nlm.errors import ConfigError
from nlm.runtime import pick_precision
from nlm.train.config import TrainConfig

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    return {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for flag in line.split()}


def test_auto_takes_bf16_exactly_where_the_cpu_has_amx_or_avx512_bf16():
    native = bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    assert pick_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert [pick_precision(name, CPU) for name in ("fp32", "bf16")] == ["fp32", "bf16"]
    with pytest.raises(ConfigError, match="fp16"):
        pick_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="not on mps"):
        pick_precision("bf16", torch.device("mps"))


@pytest.fixture(scope="module", params=sorted(HEADS))
def run_dir(request, tmp_path_factory):
    return tiny_word_lm(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = session_root(tmp_path_factory) / "precision.txt"
    path.write_text("".join(line + "\n" for line in SOURCE.sample(40, seed=23)))
    return path


def test_bf16_scores_agree_with_fp32_within_a_tolerance_and_say_which_they_are(run_dir, text):
    fp32, bf16 = (nlm_api.load(run_dir, precision=p) for p in ("fp32", "bf16"))
    lines = text.read_text().splitlines()
    pairs = list(zip(fp32.score(lines), bf16.score(lines)))
    assert sum(a.logprob != b.logprob for a, b in pairs) > len(lines) // 2  # bf16 is really what computed them
    for a, b in pairs:
        assert a.tokens == b.tokens and a.logprob != 0
        assert abs(a.logprob - b.logprob) <= 0.02 * a.tokens, (a.logprob, b.logprob)  # bf16 keeps ~3 digits
    ppl = {p: nlm_api.load(run_dir, precision=p).perplexity(text) for p in ("fp32", "bf16")}
    assert ppl["bf16"].ppl == pytest.approx(ppl["fp32"].ppl, rel=0.01)
    assert ppl["bf16"].signature.endswith("|precision:bf16") and ppl["fp32"].signature.endswith("|precision:fp32")
    result = nlm("score", "-m", run_dir, text, "--precision", "bf16")
    assert result.exit_code == 0 and "|precision:bf16|start:" in result.stderr


def test_every_inference_command_takes_the_precision(run_dir, text):
    for args in (
        ["perplexity", text],
        ["generate", "--prompt", SOURCE.words[0], "--greedy", "--max-tokens", "5"],
        ["next", SOURCE.words[1], "--top", "3"],
    ):
        results = [nlm(*args, "-m", run_dir, "--precision", p) for p in ("fp32", "bf16", "auto")]
        assert [r.exit_code for r in results] == [0, 0, 0], [r.stderr for r in results]
    probabilities = json.loads(
        "[" + ",".join(nlm("next", "-m", run_dir, "--precision", "bf16", "--top", "99", "--format", "json",
                           SOURCE.words[2]).stdout.splitlines()) + "]"
    )  # fmt: skip
    assert math.fsum(row["prob"] for row in probabilities) == pytest.approx(1.0, abs=1e-5)  # a float32 softmax


def test_training_in_bf16_learns_and_config_json_names_the_precision(tmp_path, tiny_corpus):
    common = ["train", "--train", tiny_corpus[0], "--valid", tiny_corpus[1], "--hidden", "16", "--layers", "1",
              "--max-steps", "40", "--batch-size", "8", "--bptt", "10", "--optimizer", "adam", "--lr", "0.01",
              "--device", "cpu", "-q"]  # fmt: skip
    runs = {name: tmp_path / name for name in ("bf16", "old-spelling", "auto", "fp32")}
    for name, extra in (
        ("bf16", ["--precision", "bf16"]),
        ("old-spelling", ["--bf16"]),
        ("auto", ["--precision", "auto"]),
    ):
        assert nlm(*common, *extra, "-o", runs[name]).exit_code == 0
    assert nlm(*common, "-o", runs["fp32"]).exit_code == 0
    precision = {
        name: json.loads((run / "config.json").read_text())["train"]["precision"] for name, run in runs.items()
    }
    assert precision == {"bf16": "bf16", "old-spelling": "bf16", "auto": pick_precision("auto", CPU), "fp32": "fp32"}
    losses = {name: [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for name, run in runs.items()}  # fmt: skip
    assert losses["bf16"] == losses["old-spelling"]  # the same run, bit for bit
    assert losses["bf16"][-1] == pytest.approx(losses["fp32"][-1], rel=0.05) and losses["bf16"][-1] < math.log(30)


def test_a_run_saved_before_precision_existed_loads():
    assert TrainConfig.from_dict({"bf16": True}).precision == "bf16"
    assert TrainConfig.from_dict({"bf16": False}).precision == "fp32"
    with pytest.raises(ConfigError, match="--precision"):
        TrainConfig(precision="fp8")


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A model whose weights outweigh its vocabulary and config, so that sizes compare."""
    return train_tiny_lm(session_root(tmp_path_factory), "wide", hidden=128, steps=2)


def test_export_writes_a_self_contained_half_size_checkpoint_every_command_loads(tmp_path, wide_run, text):
    small, full = tmp_path / "small.pt", tmp_path / "full.pt"
    assert nlm("export", "-m", wide_run, "--precision", "bf16", "-o", small).exit_code == 0
    assert nlm("export", "-m", wide_run, "--precision", "fp32", "-o", full).exit_code == 0
    assert small.stat().st_size < 0.55 * full.stat().st_size
    payload = torch.load(small, weights_only=True)
    assert {t.dtype for t in payload["model"].values() if t.is_floating_point()} == {torch.bfloat16}
    assert "trainer" not in payload and "rng" not in payload and payload["exported"]["precision"] == "bf16"
    original = nlm("score", "-m", wide_run, text, "-q").stdout
    assert nlm("score", "-m", full, text, "-q").stdout == original  # fp32 weights: the same numbers
    exported = nlm("score", "-m", small, text, "-q").stdout
    for a, b in zip(original.splitlines(), exported.splitlines()):
        assert float(a.split("\t")[0]) == pytest.approx(float(b.split("\t")[0]), rel=0.02, abs=0.05)
    for args in (["perplexity", text], ["next", "a"], ["generate", "--prompt", "a", "--max-tokens", "3"],
                 ["neighbours", SOURCE.words[0], "--top", "2"]):  # fmt: skip
        assert nlm(*args, "-m", small).exit_code == 0, args


def test_export_refuses_what_it_cannot_do(tmp_path, wide_run):
    one_line_error(nlm("export", "-m", tmp_path / "none", "-o", tmp_path / "x.pt"), 66, "no such checkpoint")
    one_line_error(nlm("export", "-m", wide_run, "-o", wide_run / "best.pt"), 73, "is also an input")
    result = nlm("export", "-m", wide_run, "--precision", "fp16", "-o", tmp_path / "x.pt")
    assert result.exit_code == 2 and not (tmp_path / "x.pt").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_auto_is_bf16_where_supported_and_agrees_with_fp32(run_dir, text):
    cuda = torch.device("cuda")
    assert pick_precision("auto", cuda) == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    fp32, bf16 = (nlm_api.load(run_dir, device="cuda", precision=p).perplexity(text).ppl for p in ("fp32", "bf16"))
    assert bf16 == pytest.approx(fp32, rel=0.01)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, wide_run):
    pytest.importorskip("onnxruntime")
    path = session_root(tmp_path_factory) / "wide-int8.pt"
    if not path.exists():
        result = nlm("export", "-m", wide_run, "--precision", "int8", "-o", path)
        assert result.exit_code == 0 and "recurrent layers in int8" in result.stderr, result.stderr
    return path


def test_an_int8_export_scores_close_to_fp32_through_every_command(int8_export, wide_run, text):
    payload = torch.load(int8_export, weights_only=True)
    assert isinstance(payload["int8"]["onnx"], bytes) and not any(k.startswith("rnn.") for k in payload["model"])
    fp32, int8 = nlm_api.load(wide_run), nlm_api.load(int8_export)
    lines = text.read_text().splitlines()
    for a, b in zip(fp32.score(lines), int8.score(lines)):
        assert abs(a.logprob - b.logprob) <= 0.02 * a.tokens, (a.logprob, b.logprob)
    for protocol in ("stream", "sentence"):
        ppl = [m.perplexity(text, protocol=protocol) for m in (fp32, int8)]
        assert ppl[1].ppl == pytest.approx(ppl[0].ppl, rel=0.01) and ppl[1].signature.endswith("|precision:int8+fp32")
    assert nlm_api.load(int8_export, precision="bf16").signature.endswith("|precision:int8+bf16")
    for args in (["score", text], ["next", "a", "--top", "3"], ["generate", "--prompt", "a", "--max-tokens", "4"],
                 ["generate", "--prompt", "a", "--beam", "3", "--max-tokens", "4"]):  # fmt: skip
        assert nlm(*args, "-m", int8_export).exit_code == 0, args


def test_int8_refuses_a_per_layer_stack(tmp_path, tiny_corpus):
    pytest.importorskip("onnxruntime")
    run = tmp_path / "awd"
    trained = nlm("train", "--train", tiny_corpus[0], "-o", run, "--hidden", "16", "--layers", "1", "--weight-drop",
                  "0.2", "--max-steps", "2", "--batch-size", "4", "--bptt", "8", "--device", "cpu", "-q")  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    one_line_error(nlm("export", "-m", run, "--precision", "int8", "-o", tmp_path / "x.pt"), 2, "per-layer stack")
    assert not (tmp_path / "x.pt").exists()
