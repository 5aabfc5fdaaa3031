"""MLP and CNN classifiers: configs, conv specs and their errors, shapes, encoder transfer, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlm.errors import ConfigError
from nlm.images.data import generate_digits
from nlm.models.autoencoder import Autoencoder, AutoencoderConfig
from nlm.models.classifiers import (
    CLASSIFIERS,
    CNNClassifier,
    CNNConfig,
    MLPClassifier,
    MLPConfig,
    build_classifier,
    conv_output_shapes,
    format_conv_layers,
    parse_conv_layers,
)


def test_parse_conv_layers_round_trip_and_defaults():
    assert parse_conv_layers("32:3:1:1, 64:3:2:1") == ((32, 3, 1, 1), (64, 3, 2, 1))
    assert parse_conv_layers("16:5") == ((16, 5, 1, 0),)
    assert parse_conv_layers("8:3:2") == ((8, 3, 2, 0),)
    assert format_conv_layers(((32, 3, 1, 1), (64, 3, 2, 1))) == "32:3:1:1,64:3:2:1"


@pytest.mark.parametrize(
    "text, words",
    [("32", "conv layer 1"), ("32:3,x:3", "conv layer 2 'x:3'"), ("1:2:3:4:5", "out:kernel"), ("", "conv layer 1")],
)
def test_parse_conv_layers_errors(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_conv_layers(text)


def test_lenet_default_shapes():
    config = CNNConfig()
    assert conv_output_shapes(config.input_shape, config.conv, config.pool_size) == [(6, 14, 14), (16, 5, 5)]
    model = CNNClassifier(config)
    assert model.dense.hidden[0].in_features == 400 and [m.out_features for m in model.dense.hidden] == [120, 84]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    "input_shape, conv, pool, pool_size, last",
    [
        ((1, 28, 28), "32:3:1:1,64:3:1:1", "max", 2, (64, 7, 7)),
        ((3, 32, 32), "16:3:2:1", "avg", 2, (16, 8, 8)),
        ((1, 28, 28), "4:3", "max", 1, (4, 26, 26)),
        ((1, 20, 12), "4:5:1:2,8:3:1:1", "max", 2, (8, 5, 3)),
    ],
)
def test_cnn_shapes(input_shape, conv, pool, pool_size, last):
    config = CNNConfig(input_shape=input_shape, conv=conv, pool=pool, pool_size=pool_size, hidden=(16,), num_classes=7)
    assert conv_output_shapes(input_shape, config.conv, pool_size)[-1] == last
    model = build_classifier("cnn", config)
    assert model(torch.rand(2, *input_shape)).shape == (2, 7)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"conv": "32:7:1:0", "input_shape": (1, 5, 5)}, r"conv layer 1 \(32:7:1:0\) has a 7x7 kernel but gets 5x5"),
        ({"conv": "0:3:1:1"}, r"conv layer 1 \(0:3:1:1\) needs channels"),
        (
            {"conv": "8:3:1:1,8:3:1:1,8:3:1:1,8:3:1:1,8:3:1:1"},
            r"conv layer 5 .* leaves 1x1, which pooling by 2 shrinks to 0x0",
        ),
        ({"conv": "8:3:0:1"}, "stride"),
        ({"conv": ()}, "at least one conv layer"),
        ({"pool": "median"}, "unknown pooling"),
        ({"pool_size": 0}, "pool size"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_classes": 1}, "2 classes"),
        ({"input_shape": (1, 28)}, "input shape"),
    ],
)
def test_cnn_config_errors(changes, words):
    with pytest.raises(ConfigError, match=words):
        CNNConfig(**changes)


def test_configs_round_trip_through_dicts():
    cnn = CNNConfig(conv="32:3:1:1,64:3:1:1", hidden=(32,))
    as_json = {k: [list(v) for v in val] if k == "conv" else val for k, val in cnn.to_dict().items()}
    assert CNNConfig.from_dict(as_json) == cnn and cnn.conv == ((32, 3, 1, 1), (64, 3, 1, 1))
    mlp = MLPConfig(hidden=(64, 32), activation="sigmoid")
    assert MLPConfig.from_dict({k: list(v) if isinstance(v, tuple) else v for k, v in mlp.to_dict().items()}) == mlp


@pytest.mark.parametrize("hidden", [(), (32,), (32, 16)])
def test_mlp_shapes(hidden):
    model = build_classifier("mlp", MLPConfig(input_shape=(3, 8, 8), hidden=hidden, num_classes=4, dropout=0.1))
    assert model(torch.rand(5, 3, 8, 8)).shape == (5, 4)
    assert model(torch.rand(5, 192)).shape == (5, 4)  # already flat


def test_registry_and_build_errors():
    assert set(CLASSIFIERS) == {"mlp", "cnn"}
    assert isinstance(build_classifier("mlp", MLPConfig()), MLPClassifier)
    with pytest.raises(ConfigError, match="unknown classifier 'rnn'"):
        build_classifier("rnn", MLPConfig())
    with pytest.raises(ConfigError, match="needs a CNNConfig"):
        build_classifier("cnn", MLPConfig())


def test_init_from_encoder_copies_hidden_layers_only():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(kind="stacked", input_size=64, hidden=(32, 16)))
    mlp = MLPClassifier(MLPConfig(input_shape=(1, 8, 8), hidden=(32, 16, 8), activation="sigmoid"))
    out_before = mlp.dense.out.weight.clone()
    assert mlp.init_from_encoder(ae.encoder_state(), activation="sigmoid") == 2
    assert torch.equal(mlp.dense.hidden[0].weight, ae.encoder[0].weight)
    assert torch.equal(mlp.dense.hidden[1].bias, ae.encoder[1].bias)
    assert torch.equal(mlp.dense.out.weight, out_before)
    x = torch.rand(4, 1, 8, 8)
    hidden = torch.sigmoid(mlp.dense.hidden[1](torch.sigmoid(mlp.dense.hidden[0](x.flatten(1)))))
    assert torch.allclose(hidden, ae.encode(x))  # the MLP's second hidden layer is the code


def test_init_from_encoder_mismatches():
    ae = Autoencoder(AutoencoderConfig(input_size=64, hidden=(32,)))
    with pytest.raises(ConfigError, match="use --hidden 32"):
        MLPClassifier(MLPConfig(input_shape=(1, 8, 8), hidden=(16,), activation="sigmoid")).init_from_encoder(
            ae.encoder_state()
        )
    with pytest.raises(ConfigError, match="on images of 64 values"):
        MLPClassifier(MLPConfig(input_shape=(1, 9, 9), hidden=(32,))).init_from_encoder(ae.encoder_state())
    with pytest.raises(ConfigError, match="--activation sigmoid"):
        MLPClassifier(MLPConfig(input_shape=(1, 8, 8), hidden=(32,))).init_from_encoder(
            ae.encoder_state(), activation="sigmoid"
        )


def train_classifier(model, x, y, *, steps, lr, batch=64):
    """Plain Adam steps on random minibatches; the real loop lives in the trainer."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(x), (batch,), generator=order)
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.slow
def test_generated_digits_are_learnable_by_a_cnn_but_not_by_a_linear_model():
    train, test = generate_digits(3000, seed=1), generate_digits(1000, seed=2)
    x, y, x_test, y_test = train.floats(), train.labels, test.floats(), test.labels
    torch.manual_seed(0)
    cnn = build_classifier("cnn", CNNConfig())
    train_classifier(cnn, x, y, steps=200, lr=3e-3)
    torch.manual_seed(0)
    linear = build_classifier("mlp", MLPConfig(hidden=()))
    train_classifier(linear, x, y, steps=300, lr=1e-2)
    cnn_accuracy, linear_accuracy = accuracy(cnn, x_test, y_test), accuracy(linear, x_test, y_test)
    assert cnn_accuracy > 0.95
    assert linear_accuracy < cnn_accuracy - 0.05
