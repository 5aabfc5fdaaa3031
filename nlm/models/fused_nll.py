"""The full softmax's loss in one piece: output layer, log-softmax and the target's -log p, forward and backward.

    forward   logits = x W^T + b      into rows padded to a multiple of ROW_ALIGN, -inf in the padding
              logp   = log_softmax    in place
              nll    = -logp[target]
    backward  G      = exp(logp)      in place: the softmax
              G[target] -= 1          dLoss/dlogits of each row, before its weight g
              dx = (G W) g,  dW = G^T (x g),  db = G^T g      (g scales the small [N, H] side)

Why, on a CPU (PTB, V = 10,002, 700 positions, one core):
  - a matrix product whose output rows are misaligned runs far slower: the [700, V] logits take 54 ms
    instead of 32 with V = 10,002 (10,000 words less <unk>, plus 4 specials); padded rows start on
    64-byte boundaries and the -inf columns add nothing to any softmax;
  - autograd's path (linear, then cross_entropy) allocates four [N, V] tensors a step (logits, their
    log-softmax, the loss gradient, the logits' gradient), 28 MB each, which the C library hands back
    to the system and maps anew: thousands of page faults a step.  Here one buffer, kept by the head
    from step to step, holds them all in turn; and the loss gradient is never formed.
Results equal F.linear + F.cross_entropy up to rounding (tests/test_heads.py).  `FullSoftmax.nll` takes
this path for float32 on the CPU, where it was measured; elsewhere it keeps autograd's.
"""

from __future__ import annotations

import math
import weakref

import torch
from torch.autograd.function import once_differentiable

ROW_ALIGN = 16  # floats: 64 bytes


class Workspace:
    """The buffer a head computes its training logits in, lent to one graph at a time (a second forward
    before the first one's backward, or while a graph that will never be back-propagated is alive, gets
    a fresh one, as does inference); nothing of it is saved with the model."""

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.holder = None  # a weak reference to the autograd context that still needs the buffer

    def take(self, rows: int, width: int, like: torch.Tensor) -> torch.Tensor:
        if (self.holder is not None and self.holder() is not None) or torch.is_inference_mode_enabled():
            return like.new_empty(rows, width)  # in use; or an inference tensor, which training could not write to
        b = self.buffer
        if b is None or b.numel() < rows * width or b.device != like.device or b.dtype != like.dtype:
            self.buffer = b = like.new_empty(rows * width)
        return b[: rows * width].view(rows, width)


class FusedNLL(torch.autograd.Function):
    """-log softmax(x W^T + b)[target] for x [N, H], targets [N]: float nats [N]."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor, workspace: Workspace
    ) -> torch.Tensor:
        vocab = weight.size(0)
        logp = workspace.take(x.size(0), -(-vocab // ROW_ALIGN) * ROW_ALIGN, x)
        logp[:, vocab:] = -math.inf
        torch.addmm(bias, x, weight.t(), out=logp[:, :vocab])
        torch.log_softmax(logp, dim=1, out=logp)
        nll = logp.gather(1, targets.unsqueeze(1)).squeeze(1).neg()
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, weight, targets)
            ctx.logp, ctx.workspace = logp, workspace
            workspace.holder = weakref.ref(ctx)
        return nll

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        x, weight, targets = ctx.saved_tensors
        if ctx.logp is None:
            raise RuntimeError(
                "the fused loss's buffer was spent by its first backward; it cannot be back-propagated twice"
            )
        grad, ctx.logp = ctx.logp.exp_(), None
        grad[torch.arange(targets.numel(), device=targets.device), targets] -= 1.0
        grad, g = grad[:, : weight.size(0)], g.contiguous()
        ctx.workspace.holder = None
        dx = grad.mm(weight).mul_(g.unsqueeze(1)) if ctx.needs_input_grad[0] else None
        dw = grad.t().mm(x * g.unsqueeze(1)) if ctx.needs_input_grad[1] else None
        db = grad.t().mv(g) if ctx.needs_input_grad[2] else None
        return dx, dw, db, None, None
