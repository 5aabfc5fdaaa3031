"""`nlm diagnose`: gradient norms by lag against a hand-written BPTT, the vanishing-gradient result itself,
per-layer norms before and after clipping, the chart, and bad input."""

from __future__ import annotations

import math
import random

import pytest
import torch
from cli_helpers import nlm, one_line_error, png_size
from lm_helpers import session_root, train_tiny_lm, write_corpus

from nlm.lm.diagnose import FreshModels, fresh_subjects, train_steps
from nlm.lm.gradients import lag_gradient_norms, layer_gradient_norms, sample_windows
from nlm.models.recurrent import set_forget_bias
from nlm.models.rnn import RNNLM, RNNConfig, layer_name


@pytest.fixture(scope="module")
def random_text(tmp_path_factory):
    """300 lines of 10 words drawn uniformly from 50: no structure for a model to find."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(50)]
    path = tmp_path_factory.mktemp("random") / "random.txt"
    path.write_text("".join(" ".join(rng.choice(words) for _ in range(10)) + "\n" for _ in range(300)))
    return path


def hand_bptt(model: RNNLM, windows: torch.Tensor) -> list[float]:
    """A one-layer tanh RNN differentiated by hand, in float64: h_t = tanh(W x_t + b + U h_{t-1}), and
    dL/dh_{t-1} = U^T ((1 - h_t^2) * dL/dh_t), starting from dL/dh_t = D^T (softmax - onehot)."""
    p = {name: value.detach().double() for name, value in model.named_parameters()}
    inputs, target = windows[:, :-1], windows[:, -1]
    h, hs = torch.zeros(len(windows), model.config.hidden, dtype=torch.float64), []
    for t in range(inputs.shape[1]):
        x = p["embedding.weight"][inputs[:, t]]
        h = torch.tanh(
            x @ p["rnn.weight_ih_l0"].T + p["rnn.bias_ih_l0"] + h @ p["rnn.weight_hh_l0"].T + p["rnn.bias_hh_l0"]
        )
        hs.append(h)
    logits = hs[-1] @ p["decoder.weight"].T + p["decoder.bias"]
    grad = (logits.softmax(1) - torch.nn.functional.one_hot(target, logits.shape[1])) @ p["decoder.weight"]
    norms = [float(grad.norm(dim=1).mean())]
    for t in range(len(hs) - 1, 0, -1):
        grad = (grad * (1 - hs[t] ** 2)) @ p["rnn.weight_hh_l0"]
        norms.append(float(grad.norm(dim=1).mean()))
    return norms


def test_lag_norms_equal_back_propagation_written_out_by_hand():
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=20, cell="rnn-tanh", layers=1, emb=8, hidden=12, dropout=0.0, init_range=0.5))
    windows = torch.randint(4, 20, (5, 9))
    norms = lag_gradient_norms(model, windows)
    assert len(norms) == 8
    assert norms == pytest.approx(hand_bptt(model, windows), rel=1e-4)


def test_windows_are_reproducible_slices_of_the_stream():
    ids = torch.arange(100).numpy()
    a, b = sample_windows(ids, count=6, length=10, seed=4), sample_windows(ids, count=6, length=10, seed=4)
    assert torch.equal(a, b) and a.shape == (6, 10)
    assert all(torch.equal(row, torch.arange(int(row[0]), int(row[0]) + 10)) for row in a)


def test_forget_bias_sets_the_forget_gate_of_every_layer_and_nothing_else():
    model = RNNLM(RNNConfig(vocab_size=10, cell="lstm", layers=2, emb=4, hidden=3, dropout=0.0))
    before = {n: p.detach().clone() for n, p in model.rnn.named_parameters()}
    assert set_forget_bias(model.recurrent, 1.0) == 2
    for layer in (0, 1):
        total = model.rnn.get_parameter(f"bias_ih_l{layer}") + model.rnn.get_parameter(f"bias_hh_l{layer}")
        assert torch.equal(total[3:6], torch.ones(3))
        for name in (f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
            kept = torch.cat([before[name][:3], before[name][6:]])
            assert torch.equal(kept, torch.cat([model.rnn.get_parameter(name)[:3], model.rnn.get_parameter(name)[6:]]))


@pytest.mark.parametrize(
    "name, part",
    [
        ("embedding.weight", "embedding"),
        ("rnn.weight_hh_l0", "rnn layer 1"),
        ("rnn.bias_ih_l2_reverse", "rnn layer 3"),
        ("stack.layers.1.weight_hh_l0", "rnn layer 2"),
        ("decoder.bias", "decoder"),
    ],
)
def test_parameters_are_grouped_by_layer(name, part):
    assert layer_name(name) == part


def test_an_untrained_tanh_rnn_loses_its_gradient_orders_of_magnitude_faster_than_an_lstm(random_text, tmp_path):
    """Same random text, same windows, hidden 64, init +-0.1, seed 1; the LSTM's forget-gate bias is 1."""
    plot = tmp_path / "flow.png"
    result = nlm(
        "diagnose",
        "gradients",
        random_text,
        "--cell",
        "rnn-tanh",
        "--cell",
        "lstm",
        "--forget-bias",
        1,
        "--lags",
        50,
        "--seed",
        1,
        "--plot",
        plot,
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "lag\trnn-tanh\tlstm" and len(lines) == 52
    rows = [[float(v) for v in line.split("\t")] for line in lines[1:]]
    assert [int(row[0]) for row in rows] == list(range(51))
    tanh_drop, lstm_drop = rows[50][1] / rows[0][1], rows[50][2] / rows[0][2]
    assert tanh_drop < 1e-12 and lstm_drop > 1e-7  # measured: 2.6e-18 and 2.8e-5
    assert lstm_drop / tanh_drop > 1e6
    assert png_size(plot) == (640, 400) and "wrote the gradient flow" in result.stderr


def test_one_model_prints_lag_and_norm(random_text):
    result = nlm("diagnose", "gradients", random_text, "--cell", "gru", "--hidden", 8, "--lags", 3)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "lag\tnorm" and len(result.stdout.splitlines()) == 5
    default = nlm("diagnose", "gradients", random_text, "--cell", "gru", "--hidden", 8, "--windows", 2)
    assert default.exit_code == 0 and len(default.stdout.splitlines()) == 1 + 51, default.stderr  # --lags 50


def test_checkpoints_and_fresh_models_share_one_table(tmp_path_factory):
    root = session_root(tmp_path_factory)
    run, text = train_tiny_lm(root, "word"), write_corpus(root / "corpus")[0]
    result = nlm("diagnose", "gradients", text, "-m", run, "-m", run / "best.pt", "--cell", "lstm", "--lags", 4)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "lag\tword\tword-2\tlstm" and len(lines) == 6
    assert all(
        row.split("\t")[1] == row.split("\t")[2] for row in lines[1:]
    )  # the folder and its best.pt are one model


def test_clipping_rescales_every_layer_by_the_same_factor(random_text):
    result = nlm("diagnose", "clipping", random_text, "--cell", "lstm", "--layers", 2, "--hidden", 16, "--clip", 0.01)
    assert result.exit_code == 0, result.stderr
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert header == ["model", "layer", "before", "after", "clipped"]
    assert [row[1] for row in rows] == ["embedding", "rnn layer 1", "rnn layer 2", "decoder", "total"]
    assert {row[4] for row in rows} == {"yes"}  # the total was over 0.01: every layer was scaled
    loose = nlm("diagnose", "clipping", random_text, "--cell", "lstm", "--layers", 2, "--hidden", 16, "--clip", 1e6)
    assert {line.split("\t")[4] for line in loose.stdout.splitlines()[1:]} == {"no"}
    before, after = ([float(row[i]) for row in rows] for i in (2, 3))
    assert before[-1] == pytest.approx(sum(b * b for b in before[:-1]) ** 0.5, rel=1e-5)
    assert before[-1] > 0.01 and after[-1] == pytest.approx(0.01, rel=1e-4)
    assert [a / b for a, b in zip(after, before)] == pytest.approx([0.01 / before[-1]] * 5, rel=1e-4)


def test_layer_norms_without_clipping_are_unchanged():
    model = RNNLM(RNNConfig(vocab_size=12, cell="gru", layers=1, emb=6, hidden=6, dropout=0.0))
    rows = layer_gradient_norms(model, torch.randint(4, 12, (3, 7)), clip=0)
    assert all(row.before == row.after > 0 and not row.clipped for row in rows)


def test_training_steps_lower_the_loss_on_the_text(tiny_corpus):
    train, _ = tiny_corpus
    (subject,) = fresh_subjects(train, FreshModels(cells=("lstm",), hidden=16, seed=2))
    windows = sample_windows(subject.corpus.ids, count=16, length=36, seed=0)

    def loss() -> float:
        with torch.no_grad():
            features, _ = subject.model.eval()(windows[:, :-1])
            return float(subject.model.nll(features, windows[:, 1:]).mean())

    untrained = loss()
    assert untrained == pytest.approx(math.log(len(subject.vocab)), rel=0.02)  # about uniform at the start
    train_steps(subject.model, subject.vocab, subject.corpus, steps=60, lr=0.01, seed=2)
    assert loss() < untrained / 2  # the grammar is far from uniform


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--lags", 5], 2, "give a model to look at"),
        (["--lags", 5000, "--cell", "gru"], 65, "fewer than the 5002 a window needs"),
        (["--lags", 5, "--cell", "gru", "--forget-bias", 1], 2, "--forget-bias applies to --cell lstm only"),
        (["--lags", 5, "-m", "no-such-run"], 66, "no-such-run"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(random_text, args, code, words):
    one_line_error(nlm("diagnose", "gradients", random_text, *args), code, words)


def test_a_missing_text_is_one_line_and_66(tmp_path):
    one_line_error(
        nlm("diagnose", "gradients", tmp_path / "none.txt", "--cell", "lstm", "--lags", 3), 66, "no such file"
    )


def test_forget_bias_is_a_model_setting_that_training_starts_from():
    model = RNNLM(RNNConfig(vocab_size=10, emb=4, hidden=3, layers=2, forget_bias=1.0))
    for layer in range(2):
        assert torch.equal(model.rnn.get_parameter(f"bias_ih_l{layer}")[3:6], torch.ones(3))
    stacked = RNNLM(RNNConfig(vocab_size=10, emb=4, hidden=3, layers=2, last_hidden=4, forget_bias=2.0, tie=True))
    assert all(
        torch.equal(layer.bias_ih_l0[layer.hidden_size : 2 * layer.hidden_size], torch.full((layer.hidden_size,), 2.0))
        for layer in stacked.stack.layers
    )
