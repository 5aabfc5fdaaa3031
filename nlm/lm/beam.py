"""Beam search: the most likely continuations of several prompts at once, their beams advanced as one batch.

Each prompt keeps `beam` hypotheses alive.  At every step each one is extended by every
symbol, and of a prompt's 2 x beam best extensions (by total log-prob) those that end in
<eos> and rank among the first `beam` are finished, while the best `beam` others live on
(fairseq's rule).  A prompt is done once it has `beam` finished hypotheses; at max_tokens
its live ones are finished as they stand (not ended).  Finished hypotheses are ranked by
GNMT's normalised score (Wu et al. 2016)

    score = logprob / ((5 + length) / 6) ** alpha        length: tokens, <eos> included

so alpha 0 ranks by log-prob alone and a larger alpha favours longer continuations.  With
beam 1 this is greedy decoding, token for token.  Every prompt has `beam` rows in the batch
(a prompt's first step, or one with fewer live hypotheses, fills the rest with rows at
-inf), so one top-k per step serves all prompts:

    rows     [p0 h0 .. p0 h(N-1), p1 h0 .. p1 h(N-1), ...]     scores [P, N]
    step     scores + log P(next) -> [P, N x V] -> top 2N per prompt -> finished / live
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nlm.lm.decoding import Decoded, never_generated
from nlm.models.rnn import RNNLM, cat_states, select_state
from nlm.text.symbols import EOS


def normalised_score(decoded: Decoded, alpha: float) -> float:
    """GNMT's length-normalised log-prob of a finished hypothesis."""
    length = len(decoded.ids) + int(decoded.ended)
    return decoded.logprob / ((5 + length) / 6) ** alpha


def beam_search(
    model: RNNLM,
    prefixes: Sequence[Sequence[int]],
    *,
    beam: int,
    num: int,
    max_tokens: int,
    length_penalty: float = 0.0,
) -> list[list[Decoded]]:
    """The `num` best of `beam` finished hypotheses continuing each prefix (start symbol included), best first."""
    device = next(model.parameters()).device
    finished: list[list[Decoded]] = [[] for _ in prefixes]
    with torch.inference_mode():
        # 1. Condition on each prefix alone (they differ in length), then give each prompt `beam` rows.
        states, last = [], []
        for prefix in prefixes:
            features, state = model(torch.tensor([list(prefix)], device=device))
            states.append(state)
            last.append(model.log_probs(features[:, -1]))
        rows = torch.arange(len(prefixes), device=device).repeat_interleave(beam)
        state, logprobs = select_state(cat_states(states), rows), torch.cat(last)[rows]
        scores = torch.full((len(prefixes), beam), -math.inf, dtype=torch.float64, device=device)
        scores[:, 0] = 0.0  # one live hypothesis, the empty one, per prompt
        live: list[list[list[int]]] = [[[]] for _ in prefixes]
        active = list(range(len(prefixes)))
        for step in range(max_tokens):
            # 2. Every extension of every live hypothesis, and each prompt's 2 x beam best.
            total = never_generated(logprobs).double().view(len(active), beam, -1) + scores.unsqueeze(2)
            vocab_size = total.size(2)
            values, flat = total.view(len(active), -1).topk(min(2 * beam, beam * vocab_size), dim=1)
            # 3. Finish the <eos> extensions among the first `beam`; keep the best `beam` others alive.
            kept, picks, new_scores = [], [], []
            values, flat = values.tolist(), flat.tolist()
            for a, p in enumerate(active):
                grown = _extend(p, live, finished, values[a], flat[a], beam, vocab_size)
                if len(finished[p]) < beam and step + 1 == max_tokens:  # out of steps: finished as they stand
                    finished[p].extend(Decoded(ids, False, logprob) for ids, logprob, _ in grown)
                if len(finished[p]) >= beam or not grown or step + 1 == max_tokens:
                    continue
                kept.append(p)
                live[p] = [ids for ids, _, _ in grown]
                picks += [(a * beam + origin, ids[-1]) for ids, _, origin in grown]
                picks += [picks[-1]] * (beam - len(grown))  # rows at -inf fill the beam
                new_scores.append([logprob for _, logprob, _ in grown] + [-math.inf] * (beam - len(grown)))
            active = kept
            if not active:
                break
            # 4. Feed each hypothesis's new token with its parent's state: every step costs the same at any length.
            parents = torch.tensor([row for row, _ in picks], device=device)
            tokens = torch.tensor([[token] for _, token in picks], device=device)
            features, state = model(tokens, select_state(state, parents))
            logprobs = model.log_probs(features[:, -1])
            scores = torch.tensor(new_scores, dtype=torch.float64, device=device)
    ranked = [sorted(f, key=lambda d: -normalised_score(d, length_penalty)) for f in finished]
    return [r[:num] for r in ranked]


def _extend(
    p: int,
    live: list[list[list[int]]],
    finished: list[list[Decoded]],
    values: list[float],
    flat: list[int],
    beam: int,
    vocab_size: int,
) -> list[tuple[list[int], float, int]]:
    """Prompt p's surviving extensions (ids, logprob, the row they grew from); finished ones go to `finished`."""
    grown: list[tuple[list[int], float, int]] = []
    for rank, (value, index) in enumerate(zip(values, flat)):
        if value == -math.inf:
            break
        origin, token = divmod(index, vocab_size)
        if token == EOS:
            if rank < beam:
                finished[p].append(Decoded(live[p][origin], True, value))
        elif len(grown) < beam:
            grown.append(([*live[p][origin], token], value, origin))
    return grown
