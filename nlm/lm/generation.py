"""Generating text: greedy, sampled or beam-searched continuations of prompts, the state carried from token to token.

Every continuation carries its log-probability under the model (natural log, the full
untempered distribution, `<eos>` included when it ended), so the outputs of different
decoding methods can be compared.  Beam search is in nlm/lm/beam.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nlm.config import Config, check
from nlm.io.atomic import check_distinct
from nlm.io.text import line_batches, open_output
from nlm.lm.beam import beam_search
from nlm.lm.decoding import Decoded, never_generated
from nlm.lm.loading import LoadedLM
from nlm.lm.scoring import CorpusSummary, protocol_signature, score_sentences
from nlm.models.rnn import RNNLM, select_state
from nlm.text.symbols import EOS, UNK
from nlm.text.vocab import Vocabulary

BEAM_PROMPTS = 32  # prompts whose beams advance together as one batch


@dataclass(frozen=True)
class SamplingConfig(Config):
    max_tokens: int = 50  # new tokens per sample at most; a sample ends earlier at <eos>
    greedy: bool = True  # always take the most likely token (temperature 0 means the same); False: sample
    temperature: float = 1.0  # logits are divided by this before sampling: < 1 sharper, > 1 flatter
    top_k: int = 0  # sample among the k most likely tokens only (0: all)
    top_p: float = 1.0  # sample from the smallest set of tokens whose probability reaches p (1: all)
    num: int = 1  # samples per prompt, generated together as one batch
    seed: int | None = None  # seeds the sampler's own torch.Generator; None: a fresh random seed
    stop_at_eos: bool = True  # end a sample at <eos> (off only to time fixed lengths)
    beam: int = 0  # beam search with this many hypotheses per prompt (0: greedy or sampling); num <= beam
    length_penalty: float = 0.6  # beam: rank finished hypotheses by logprob / ((5 + length) / 6) ** alpha (GNMT)

    def validate(self) -> None:
        check(self.max_tokens >= 1, f"--max-tokens must be at least 1, not {self.max_tokens}")
        check(self.temperature >= 0, f"--temperature must be >= 0, not {self.temperature}")
        check(self.top_k >= 0, f"--top-k must be >= 0 (0: off), not {self.top_k}")
        check(0 < self.top_p <= 1, f"--top-p must be in (0, 1] (1: off), not {self.top_p}")
        check(self.num >= 1, f"--num must be at least 1, not {self.num}")
        check(self.beam >= 0, f"--beam must be at least 1 (0: off), not {self.beam}")
        check(
            self.length_penalty >= 0, f"--length-penalty must be >= 0 (0: rank by log-prob), not {self.length_penalty}"
        )
        shaped = [f"--{n}" for n, v, off in self._knobs() if v != off and not (n == "temperature" and v == 0)]
        if self.beam:
            check(self.greedy, "--sample and --beam are two ways of decoding; give one of them")
            check(not shaped, f"{', '.join(shaped)} shape sampling; beam search (--beam) does not sample")
            check(self.num <= self.beam, f"--num {self.num} asks for more hypotheses than --beam {self.beam} keeps")
        check(
            not (self.greedy and not self.beam and shaped),
            f"{', '.join(shaped)} shape sampling, but decoding is greedy (the default): add --sample",
        )

    def _knobs(self) -> list[tuple[str, float, float]]:
        """The options that shape sampling: (name, value, the value that leaves it off)."""
        return [("temperature", self.temperature, 1.0), ("top-k", self.top_k, 0), ("top-p", self.top_p, 1.0)]

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    @property
    def is_deterministic(self) -> bool:
        """Greedy decoding or beam search: no random draw, so no seed."""
        return self.is_greedy or self.beam > 0


@dataclass(frozen=True)
class Generation:
    """One generated continuation of one prompt."""

    prompt_index: int  # 0-based position of the prompt in the input
    sample_index: int  # 0-based among the prompt's samples; for beam search, the rank (0: the best)
    prompt: str
    continuation: str  # detokenized, ready to append to the prompt
    ids: tuple[int, ...]  # the generated ids, <eos> excluded
    ended: bool  # stopped at <eos> (rather than at max_tokens)
    prompt_oovs: int  # prompt symbols outside the vocabulary, read as <unk>
    logprob: float  # natural log-prob of the continuation under the model, <eos> included when it ended

    @property
    def hypothesis(self) -> str:
        """The continuation alone, as BLEU compares it with a reference (`nlm generate --continuation-only`)."""
        return self.continuation.strip()

    @property
    def text(self) -> str:
        """The prompt followed by its continuation."""
        if self.prompt[-1:].isspace():
            return self.prompt + self.continuation.lstrip()
        return self.prompt + self.continuation

    @property
    def tokens(self) -> int:
        """Generated tokens, <eos> excluded."""
        return len(self.ids)


def filter_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top k, then outside the nucleus of mass top_p (rows of [N, V])."""
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        outside = probs.cumsum(-1) - probs >= top_p  # the mass before this token already reaches p
        ordered = ordered.masked_fill(outside, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    return logits


def pick_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """The next token of each row of logits [N, V]: argmax, or a draw from the filtered distribution."""
    logits = never_generated(logits)
    if config.is_greedy:
        return logits.argmax(-1)
    logits = filter_logits(logits / config.temperature, top_k=config.top_k, top_p=config.top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def generate_ids(
    model: RNNLM, prefix: Sequence[int], *, config: SamplingConfig, generator: torch.Generator
) -> list[Decoded]:
    """`config.num` greedy or sampled continuations of `prefix` (start symbol included)."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        # 1. Condition on the prefix once, in one row: features [1, T, H], the state after its last token.
        features, state = model(torch.tensor([list(prefix)], device=device))
        # 2. Copy that row to `num` rows, so the samples are generated as one batch.
        rows = torch.zeros(config.num, dtype=torch.long, device=device)
        logits, state = model.log_probs(features[rows, -1]), select_state(state, rows)
        out = torch.empty(config.num, config.max_tokens, dtype=torch.long, device=device)
        done = torch.zeros(config.num, dtype=torch.bool, device=device)
        logprob = torch.zeros(config.num, dtype=torch.float64, device=device)
        length = 0
        for step in range(config.max_tokens):
            # 3. Pick each row's next token; a row that has produced <eos> is finished.
            token = pick_next(logits, config, generator)
            out[:, step] = token
            logprob += logits.gather(1, token.unsqueeze(1)).squeeze(1).double().masked_fill(done, 0.0)
            length = step + 1
            if config.stop_at_eos:
                done |= token == EOS
            if length == config.max_tokens or (config.stop_at_eos and bool(done.all())):
                break
            # 4. Feed only the new tokens with the carried state: every step costs the same at any length.
            features, state = model(token.unsqueeze(1), state)
            logits = model.log_probs(features[:, -1])
    # 5. Cut each row at its first <eos>.
    results = []
    for row, total in zip(out[:, :length].tolist(), logprob.tolist()):
        ended = config.stop_at_eos and EOS in row
        results.append(Decoded(row[: row.index(EOS)] if ended else row, ended, total))
    return results


def continuation_text(vocab: Vocabulary, prompt_ids: Sequence[int], new_ids: Sequence[int]) -> str:
    """The text the new ids add to the prompt, detokenized the way the vocabulary joins symbols."""
    full, head = vocab.decode([*prompt_ids, *new_ids]), vocab.decode(prompt_ids)
    if full.startswith(head):
        return full[len(head) :]
    return " " + vocab.decode(new_ids)


def generate(lm: LoadedLM, prompts: Iterable[str], *, config: SamplingConfig) -> Iterator[Generation]:
    """`config.num` continuations of each prompt, in prompt order; an empty prompt generates from the start symbol.

    Greedy decoding and sampling take one prompt at a time, its `num` samples as one batch;
    beam search advances the beams of BEAM_PROMPTS prompts together, and gives each prompt's
    `num` best finished hypotheses, best first."""
    decode = _beam_decoder(lm, config) if config.beam else _sampler(lm, config)
    index = 0
    for batch in line_batches(prompts, BEAM_PROMPTS if config.beam else 1):
        encoded = [lm.vocab.encode(prompt) for prompt in batch]
        with lm.autocast():
            decoded_batch = decode([[lm.start_id, *ids] for ids in encoded])
        for prompt, prompt_ids, results in zip(batch, encoded, decoded_batch):
            for s, decoded in enumerate(results):
                yield Generation(
                    prompt_index=index,
                    sample_index=s,
                    prompt=prompt,
                    continuation=continuation_text(lm.vocab, prompt_ids, decoded.ids),
                    ids=tuple(decoded.ids),
                    ended=decoded.ended,
                    prompt_oovs=prompt_ids.count(UNK),
                    logprob=decoded.logprob,
                )
            index += 1


def _sampler(lm: LoadedLM, config: SamplingConfig):
    """Prefixes -> their greedy or sampled continuations, one prefix at a time, from one seeded generator."""
    generator = torch.Generator(device=lm.device)
    generator.manual_seed(config.seed if config.seed is not None else secrets.randbits(63))
    return lambda prefixes: [generate_ids(lm.model, p, config=config, generator=generator) for p in prefixes]


def _beam_decoder(lm: LoadedLM, config: SamplingConfig):
    """Prefixes -> their beam-searched continuations, all prefixes in one batch."""
    return lambda prefixes: beam_search(
        lm.model,
        prefixes,
        beam=config.beam,
        num=config.num,
        max_tokens=config.max_tokens,
        length_penalty=config.length_penalty,
    )


@dataclass(frozen=True)
class GenerationEvaluation:
    """How good a model's output is: its continuations against references, and the references' perplexity."""

    samples: list[Generation]  # one greedy (or sampled) continuation per prompt
    metrics: list  # MetricScore: BLEU, chrF, ... of the continuations against the reference continuations
    references: CorpusSummary  # the full reference lines scored by the model, a fresh state each

    references_signature: str  # how the references were scored


def reference_continuation(prompt: str, reference: str) -> str:
    """What a reference says after its prompt: the rest of the line when it starts with the prompt, else all of it."""
    prompt = prompt.strip()
    return reference[len(prompt) :].strip() if prompt and reference.startswith(prompt) else reference.strip()


def evaluate_generation(
    lm: LoadedLM,
    prompts: Sequence[str],
    references: Sequence[str],
    *,
    config: SamplingConfig,
    metrics: Sequence[str] = ("bleu", "chrf"),
    tokenize: str | None = None,
    names: Sequence[str] = (),
    hyps: str | Path | None = None,
) -> GenerationEvaluation:
    """Continue each prompt once and score the continuations against the references' continuations.

    A reference that starts with its prompt is compared without it, so words copied from the
    prompt never count as matches; the references' perplexity is over their whole lines.
    With `hyps`, the generated lines (prompt + continuation) are also written there; a `hyps`
    that is one of the input files `names` is refused before any work.
    """
    check_distinct(hyps, names)
    from nlm.eval.bleu import check_parallel, corpus_scores  # sacrebleu only where BLEU is asked for

    check_parallel(prompts, [references], names)
    samples = list(generate(lm, prompts, config=config.replace(num=1)))
    if hyps is not None:
        with open_output(hyps) as out:
            out.writelines(sample.text + "\n" for sample in samples)
    hypotheses = [sample.hypothesis for sample in samples]
    targets = [reference_continuation(p, r) for p, r in zip(prompts, references)]
    scores = corpus_scores(hypotheses, [targets], metrics=metrics, tokenize=tokenize)
    summary = CorpusSummary()
    for score in score_sentences(lm, references):
        summary.add(score)
    return GenerationEvaluation(
        samples=samples, metrics=scores, references=summary, references_signature=protocol_signature(lm, bos_eos=True)
    )
