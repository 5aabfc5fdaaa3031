"""The RNN language model with the AWD-LSTM options: configs, the per-layer stack, its state, AR/TAR in the loss."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from nlm.errors import ConfigError
from nlm.lm.config import LMDataConfig
from nlm.lm.generation import SamplingConfig, generate_ids
from nlm.lm.task import LMTask
from nlm.models.regularisers import activation_penalty
from nlm.models.rnn import RNNLM, RNNConfig, detach_state, select_state
from nlm.text.batches import Window
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import EncodedCorpus

AWD = dict(
    vocab_size=30,
    emb=6,
    hidden=10,
    last_hidden=6,
    layers=3,
    dropout_input=0.4,
    dropout_hidden=0.3,
    dropout_output=0.2,
    locked_dropout=True,
    emb_dropout=0.1,
    weight_drop=0.5,
    ar=2.0,
    tar=1.0,
)


def test_default_models_keep_the_fused_module_and_its_parameter_names():
    model = RNNLM(RNNConfig(vocab_size=30, emb=8, hidden=8, layers=2))
    assert not model.config.per_layer and isinstance(model.rnn, torch.nn.LSTM)
    assert sorted(model.state_dict()) == sorted(
        ["embedding.weight", "decoder.weight", "decoder.bias"]
        + [f"rnn.{kind}_l{layer}" for layer in (0, 1) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    )
    # A config stored before these options existed loads, meaning what it meant.
    old = {
        "vocab_size": 30,
        "cell": "gru",
        "layers": 2,
        "emb": 8,
        "hidden": 12,
        "dropout": 0.3,
        "tie": False,
        "init_range": 0.1,
    }
    config = RNNConfig.from_dict(old)
    assert not config.per_layer and config.dropout_rates() == (0.3, 0.3, 0.3) and config.feature_size == 12


def test_awd_sizes_and_options_build_a_per_layer_stack():
    config = RNNConfig(**AWD)
    assert config.tie and config.per_layer and config.layer_sizes == (6, 10, 10, 6)
    model = RNNLM(config)
    assert [(m.input_size, m.hidden_size) for m in model.stack.layers] == [(6, 10), (10, 10), (10, 6)]
    assert model.decoder.weight is model.embedding.weight and "stack.layers.2.weight_hh_l0" in model.state_dict()
    assert RNNConfig(dropout=0.5, dropout_hidden=0.1).dropout_rates() == (0.5, 0.1, 0.5)
    for options in (dict(locked_dropout=True), dict(weight_drop=0.2), dict(hidden=16, last_hidden=8, emb=8)):
        assert RNNConfig(**options).per_layer, options


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(emb=6, hidden=10, last_hidden=8, tie=True), "--tie needs --emb equal to --last-hidden"),
        (dict(layers=1, hidden=10, last_hidden=6), "--last-hidden needs --layers 2"),
        (dict(weight_drop=1.0), "--weight-drop must be in [0, 1)"),
        (dict(dropout_input=-0.1), "--dropout-input must be in [0, 1)"),
        (dict(ar=-1.0), "--ar and --tar must be >= 0"),
        (dict(rnn_init="xavier"), "--rnn-init must be one of"),
    ],
)
def test_bad_settings_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(")", r"\)")):
        RNNConfig(**options)


def test_pytorch_init_gives_each_recurrent_layer_the_range_of_its_size():
    torch.manual_seed(0)
    uniform = RNNLM(RNNConfig(**AWD, init_range=0.5))
    pytorch = RNNLM(RNNConfig(**AWD, init_range=0.5, rnn_init="pytorch"))
    for wide, own in zip(uniform.stack.layers, pytorch.stack.layers):
        bound = own.hidden_size**-0.5  # 0.32 for the 10-unit layers, 0.41 for the last (6 units)
        assert wide.weight_hh_l0.abs().max() > bound >= own.weight_hh_l0.abs().max()
        assert own.weight_ih_l0.abs().max() <= bound
    assert pytorch.embedding.weight.abs().max() > 0.45  # the embedding keeps +-init_range


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_per_layer_state_carries_across_windows_and_selects_rows(cell):
    torch.manual_seed(1)
    model = RNNLM(RNNConfig(**{**AWD, "cell": cell})).eval()
    x = torch.randint(0, 30, (3, 10))
    whole, _ = model(x)
    first, state = model(x[:, :4])
    second, _ = model(x[:, 4:], detach_state(state))
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)
    zero = model.init_state(3)
    assert [(s[0] if cell == "lstm" else s).shape for s in zero] == [(1, 3, 10), (1, 3, 10), (1, 3, 6)]
    assert torch.allclose(model(x, zero)[0], whole)
    rows = torch.tensor([2, 0])
    picked, _ = model(x[rows, 4:], select_state(state, rows))
    assert torch.allclose(picked, second[rows], atol=1e-6)


def test_greedy_generation_with_a_per_layer_model_equals_rerunning_the_whole_prefix():
    torch.manual_seed(2)
    model = RNNLM(RNNConfig(**AWD)).eval()
    prefix = [3, 7, 9]
    (ids, *_), *others = generate_ids(
        model,
        prefix,
        config=SamplingConfig(greedy=True, max_tokens=6, num=2, stop_at_eos=False),
        generator=torch.Generator(),
    )
    expected = list(prefix)
    with torch.inference_mode():
        for _ in range(6):
            features, _ = model(torch.tensor([expected]))
            logits = model.log_probs(features[0, -1])
            logits[:3] = float("-inf")  # <pad>, <unk>, <bos> are never generated
            expected.append(int(logits.argmax()))
    assert ids == expected[3:] and others[0][0] == ids


def _tiny_task(config: RNNConfig, data: LMDataConfig) -> LMTask:
    vocab, _ = build_vocab([" ".join(f"w{i}" for i in range(26))], config=VocabConfig())
    ids = np.random.default_rng(0).integers(4, len(vocab), 400).astype(np.int32)
    corpus = EncodedCorpus(name="tiny", ids=ids, line_ends=np.array([400]), oovs=0)
    model = RNNLM(config.replace(vocab_size=len(vocab)))
    return LMTask(model=model, vocab=vocab, train=corpus, valid=None, data=data, device=torch.device("cpu"), seed=1)


def test_the_training_loss_adds_alpha_ar_plus_beta_tar_of_the_last_layer():
    task = _tiny_task(RNNConfig(**AWD), LMDataConfig(batch_size=4, bptt=8))
    model = task.model.train()
    window = next(task.train_batches(0, 0))
    torch.manual_seed(3)
    loss, count = task.training_step(window)
    # The same forward again, by hand: the features are the last layer's dropped output, the stash its raw one.
    torch.manual_seed(3)
    features, _ = model(window.inputs)
    raw = model.last_raw_output
    assert raw is not None and raw.shape == features.shape and not torch.equal(raw, features)
    nll = model.nll(features, window.targets).mean()
    by_hand = 2.0 * features.pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    assert count == window.targets.numel()
    assert torch.allclose(loss, nll + by_hand) and torch.allclose(
        activation_penalty(features, raw, ar=2, tar=1), by_hand
    )
    model.eval()
    model(window.inputs)
    assert model.last_raw_output is None  # nothing is kept outside training


def test_a_per_layer_state_survives_the_checkpoint_round_trip():
    task = _tiny_task(RNNConfig(**AWD), LMDataConfig(batch_size=4, bptt=8))
    task.training_step(next(task.train_batches(0, 0)))
    buffer = io.BytesIO()
    torch.save(task.state_dict(), buffer)
    buffer.seek(0)
    other = _tiny_task(RNNConfig(**AWD), LMDataConfig(batch_size=4, bptt=8))
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert len(other.state) == 3
    for mine, theirs in zip(task.state, other.state):
        assert isinstance(theirs, tuple) and all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_lr_scale_is_the_window_length_over_bptt_with_variable_bptt_only():
    window = Window(inputs=torch.zeros(2, 21, dtype=torch.long), targets=torch.zeros(2, 21, dtype=torch.long))
    variable = _tiny_task(RNNConfig(), LMDataConfig(batch_size=4, bptt=14, variable_bptt=True))
    fixed = _tiny_task(RNNConfig(), LMDataConfig(batch_size=4, bptt=14))
    assert variable.lr_scale(window) == 1.5 and fixed.lr_scale(window) == 1.0
    with pytest.raises(ConfigError, match="--variable-bptt applies to --mode stream only"):
        LMDataConfig(mode="sentence", variable_bptt=True)
