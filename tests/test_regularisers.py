"""The AWD-LSTM regularisers on tiny tensors, each against a hand computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nlm.models.recurrent import HIDDEN_WEIGHTS, RecurrentStack
from nlm.models.regularisers import (
    activation_penalty,
    drop_weights,
    embedding_dropout,
    locked_dropout,
)


def test_locked_dropout_shares_one_mask_over_time_and_draws_one_per_sequence():
    torch.manual_seed(0)
    x = torch.randn(4, 9, 64)
    y = locked_dropout(x, 0.25, training=True)
    mask = y != 0
    assert torch.allclose(y[mask], x[mask] / 0.75)  # what is kept is scaled by 1 / (1 - p)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # equal at every time step
    assert not torch.equal(mask[0, 0], mask[1, 0]) and not torch.equal(
        mask[2, 0], mask[3, 0]
    )  # differs between sequences
    assert torch.equal(locked_dropout(x, 0.25, training=False), x) and torch.equal(
        locked_dropout(x, 0.0, training=True), x
    )


def test_embedding_dropout_drops_whole_word_types_and_scales_the_rest():
    torch.manual_seed(1)
    embedding = nn.Embedding(12, 5)
    x = torch.tensor([[0, 1, 2, 3, 1, 0], [4, 5, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    out = embedding_dropout(embedding, x, 0.5, training=True)
    weight = embedding.weight.detach()
    dropped = {int(t) for t in x.flatten() if out[x == t].abs().sum() == 0}
    assert 0 < len(dropped) < 12  # some types dropped, some kept
    # The same as looking the words up in the matrix with the dropped rows zeroed and the rest scaled by 1 / (1 - p).
    rows = torch.tensor([0.0 if t in dropped else 2.0 for t in range(12)])
    assert torch.allclose(out, F.embedding(x, weight * rows[:, None]))
    out.sum().backward()  # a dropped word gets no gradient at all
    assert all(embedding.weight.grad[t].abs().sum() == 0 for t in dropped)
    assert torch.equal(embedding_dropout(embedding, x, 0.5, training=False), embedding(x))


def test_activation_penalties_match_a_hand_computation():
    dropped = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])  # B=1, T=3, H=2
    raw = torch.tensor([[[0.0, 1.0], [2.0, 1.0], [2.0, 3.0]]])
    # AR: squares 1, 0, 0, 4, 1, 1 -> mean 7/6.  TAR: steps (2, 0), (0, 2) -> squares 4, 0, 0, 4 -> mean 2.
    assert activation_penalty(dropped, raw, ar=2.0, tar=0.0).item() == pytest.approx(2 * 7 / 6)
    assert activation_penalty(dropped, raw, ar=0.0, tar=3.0).item() == pytest.approx(3 * 2.0)
    assert activation_penalty(dropped, raw, ar=2.0, tar=1.0).item() == pytest.approx(2 * 7 / 6 + 2.0)
    assert activation_penalty(dropped[:, :1], raw[:, :1], ar=0.0, tar=1.0).item() == 0.0  # one step has no change


def test_dropped_weights_are_zero_or_scaled_and_new_each_call():
    torch.manual_seed(2)
    lstm = nn.LSTM(6, 40, 1, batch_first=True)
    first, second = (drop_weights(lstm, HIDDEN_WEIGHTS, 0.4)["weight_hh_l0"] for _ in range(2))
    raw = lstm.weight_hh_l0.detach()
    for dropped in (first, second):
        kept = dropped != 0
        assert torch.allclose(dropped[kept], raw[kept] / 0.6)
        assert 0.3 < 1 - kept.float().mean().item() < 0.5  # about p of 6,400 weights dropped
    assert not torch.equal(first != 0, second != 0)


def _stack(weight_drop: float, sizes=(3, 8, 5)) -> RecurrentStack:
    return RecurrentStack(nn.LSTM, sizes, dropout=0.0, locked=False, weight_drop=weight_drop)


def test_weight_drop_changes_the_recurrent_matrix_per_step_and_not_in_eval():
    torch.manual_seed(3)
    stack = _stack(0.5).train()
    x = torch.randn(2, 6, 3)
    one, _ = stack(x)
    two, _ = stack(x)
    # The first step starts from a zero state, so the recurrent matrix cannot touch it; later steps see a new mask.
    assert torch.equal(one[:, 0], two[:, 0]) and not torch.allclose(one[:, 1:], two[:, 1:])
    stack.eval()
    plain, _ = stack(x)
    again, _ = stack(x)
    assert torch.equal(plain, again)
    # Evaluation uses the raw weights: the same as independent one-layer LSTMs loaded with them.
    reference = [nn.LSTM(3, 8, batch_first=True), nn.LSTM(8, 5, batch_first=True)]
    h = x
    for i, layer in enumerate(reference):
        layer.load_state_dict(stack.layers[i].state_dict())
        h, _ = layer(h)
    assert torch.allclose(plain, h, atol=1e-6)


def test_the_gradient_reaches_the_raw_recurrent_weight_through_the_mask():
    torch.manual_seed(4)
    lstm = nn.LSTM(3, 7, 1, batch_first=True)
    x = torch.randn(2, 5, 3)
    dropped = drop_weights(lstm, HIDDEN_WEIGHTS, 0.3)
    output, _ = functional_call(lstm, dropped, (x, None))
    output.pow(2).sum().backward()
    # Reference: an LSTM whose recurrent matrix *is* the dropped one; d/d raw = d/d dropped * mask / (1 - p).
    reference = nn.LSTM(3, 7, 1, batch_first=True)
    reference.load_state_dict({**lstm.state_dict(), "weight_hh_l0": dropped["weight_hh_l0"].detach()})
    out_ref, _ = reference(x)
    out_ref.pow(2).sum().backward()
    mask = (dropped["weight_hh_l0"] != 0).float() / 0.7
    assert lstm.weight_hh_l0.grad is not None and lstm.weight_hh_l0.grad.abs().sum() > 0
    assert torch.allclose(lstm.weight_hh_l0.grad, reference.weight_hh_l0.grad * mask, atol=1e-6)
    assert torch.allclose(lstm.weight_ih_l0.grad, reference.weight_ih_l0.grad, atol=1e-6)
    assert set(dict(lstm.named_parameters())) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


def test_an_optimizer_step_changes_what_the_weight_dropped_forward_uses():
    # pytorch/pytorch#65688: a parametrized RNN once kept using stale flat weights while its parameters trained.
    torch.manual_seed(5)
    stack = _stack(0.5)
    optimizer = torch.optim.SGD(stack.parameters(), lr=0.5)
    x = torch.randn(2, 6, 3)
    stack.eval()
    before, _ = stack(x)
    for _ in range(3):
        stack.train()
        output, _ = stack(x)
        optimizer.zero_grad()
        output.pow(2).sum().backward()
        optimizer.step()
    stack.eval()
    after, _ = stack(x)
    h = x
    for layer in stack.layers:  # the updated raw weights, read independently of the module's flat-weight cache
        weights = {name: p.detach().clone() for name, p in layer.named_parameters()}
        fresh = nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True)
        fresh.load_state_dict(weights)
        h, _ = fresh(h)
    assert not torch.allclose(before, after) and torch.allclose(after, h, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_weight_drop_runs_and_trains_under_cudnn(monkeypatch):
    from nlm.models.rnn import RNNLM, RNNConfig

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare with the CPU in full float32
    assert torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
    torch.manual_seed(6)
    stack = _stack(0.5).cuda().train()
    x = torch.randn(2, 6, 3, device="cuda")
    one, _ = stack(x)
    two, _ = stack(x)
    assert torch.equal(one[:, 0], two[:, 0]) and not torch.allclose(one[:, 1:], two[:, 1:])
    config = RNNConfig(
        vocab_size=40,
        emb=8,
        hidden=16,
        last_hidden=8,
        layers=3,
        locked_dropout=True,
        weight_drop=0.5,
        emb_dropout=0.1,
        ar=2.0,
        tar=1.0,
    )
    model = RNNLM(config).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    tokens = torch.randint(4, 40, (4, 13), device="cuda")
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    model.eval()
    with torch.inference_mode():
        before = model(inputs)[0].clone()
    for _ in range(3):  # as the trainer does: training steps, evaluation under inference_mode in between
        model.train()
        features, _ = model(inputs)
        loss = model.nll(features, targets).mean() + model.activation_penalty(features)
        optimizer.zero_grad()
        loss.backward()
        assert all(layer.weight_hh_l0.grad.abs().sum() > 0 for layer in model.stack.layers)
        optimizer.step()
        model.eval()
        with torch.inference_mode():
            after = model(inputs)[0].clone()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model.train()
        features, _ = model(inputs)
        assert torch.isfinite(model.nll(features, targets)).all()
    # What the CUDA model computes is what its raw weights give on the CPU: nothing stale in cuDNN's flat buffer.
    cpu = RNNLM(config)
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    expected, _ = cpu.eval()(inputs.cpu())
    assert not torch.allclose(before, after) and torch.allclose(after.cpu(), expected, atol=1e-5)
