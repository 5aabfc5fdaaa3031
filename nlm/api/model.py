"""`nlm.load(path) -> LanguageModel`: a trained language model from Python, the calls `nlm score`,
`nlm perplexity`, `nlm generate` and `nlm next` are made of.

Every method takes its options by keyword, named and defaulted as the command's options are
(`bos_eos=True` is `--bos-eos`, `batch_size=64` is `--batch-size 64`), and returns frozen
dataclasses.  Log-probabilities are natural logs.  A user error raises `nlm.NlmError` with
the message and exit code the command would give.

Scoring and perplexity take the adaptation options of `nlm score` and `nlm perplexity` as keywords
(`**adaptation`): the continuous cache pointer (`cache=500, cache_theta=0.7, cache_lambda=0.15,
tune_cache="valid.txt"`) and dynamic evaluation (`dynamic_eval=True, dyn_lr=..., dyn_decay=...,
dyn_segment=20, dyn_stats="train.txt", dyn_rule="rms", dyn_carry=False`); see nlm/lm/adapt_config.py.
The model holds its trained weights again when a call returns (or its iterator is exhausted or closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

from nlm.lm.adapt import adapted, adapted_scores
from nlm.lm.adapt_config import Adaptation, adaptation_settings
from nlm.lm.cache_tuning import CacheTuning, resolve_tuning, tune_cache
from nlm.lm.generation import Generation, SamplingConfig, generate
from nlm.lm.loading import LoadedLM, load_language_model
from nlm.lm.next_tokens import NextTokens, next_tokens
from nlm.lm.perplexity import Perplexity, corpus_perplexity
from nlm.lm.scoring import SentenceScore, TokenScore, protocol_signature, token_rows
from nlm.runtime import pick_device
from nlm.text.vocab import Vocabulary


def _lines(lines: str | Iterable[str]) -> Iterable[str]:
    """One str is one line; anything else is an iterable of lines."""
    return [lines] if isinstance(lines, str) else lines


class LanguageModel:
    """A trained language model, loaded from its checkpoint alone by `nlm.load`."""

    def __init__(self, loaded: LoadedLM) -> None:
        self.loaded = loaded  # the library's view (model, vocabulary, configs); internal, for nlm's own commands

    def __repr__(self) -> str:
        return f"nlm.LanguageModel({self.signature})"

    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary: `encode(text) -> list[int]`, `decode(ids) -> str`, `symbol(id) -> str`, `len(vocab)`."""
        return self.loaded.vocab

    @property
    def signature(self) -> str:
        """Which checkpoint and vocabulary: `model:best.pt#1a2b3c4d5e6f|vocab:word-1000#9f8e7d6c5b4a`."""
        return self.loaded.signature

    @property
    def path(self) -> Path:
        """The checkpoint file (a run folder resolves to its best.pt, else last.pt)."""
        return self.loaded.path

    @property
    def start_symbol(self) -> str:
        """What a sentence is conditioned on: `<eos>` for a stream-trained model, `<bos>` for a sentence-trained one."""
        return self.loaded.start_symbol

    # -- nlm score ------------------------------------------------------------------------------

    def score(
        self, lines: str | Iterable[str], *, bos_eos: bool = True, batch_size: int = 64, **adaptation: Any
    ) -> list[SentenceScore]:
        """Each line scored as a sentence from a fresh state, log P(w1 .. wn <eos> | start), as `nlm score`.

        `lines` is one string (one line) or an iterable of lines.  Each result has `logprob`
        (natural log), `tokens` (the end symbol included), `oovs`, `ppl` and `text`; without
        `bos_eos` the first token is context only and no end symbol is scored.  `adaptation`:
        the cache pointer and dynamic evaluation (module docstring), each line its own document."""
        return list(self.iter_scores(lines, bos_eos=bos_eos, batch_size=batch_size, **adaptation))

    def iter_scores(
        self,
        lines: str | Iterable[str],
        *,
        bos_eos: bool = True,
        batch_size: int = 64,
        per_token: bool = False,
        eager: bool = False,
        name: str = "the input",
        **adaptation: Any,
    ) -> Iterator[SentenceScore]:
        """`score` as a stream: each result is yielded, in input order, as soon as its batch is scored.

        `per_token` keeps every token's log-prob (for `tokens_of`); `eager` never waits for more
        lines than are already there (`nlm score -u`); `name` is the input's name in errors.
        The adaptation options are checked (and `tune_cache` carried out) before the first result."""
        settings = self._settings(adaptation, protocol="sentence", batch_size=batch_size)
        options = dict(batch_size=batch_size, bos_eos=bos_eos, per_token=per_token, eager=eager, name=name)
        return self._scores(_lines(lines), settings, options)

    def _scores(self, lines: Iterable[str], settings: Adaptation, options: dict) -> Iterator[SentenceScore]:
        with adapted(self.loaded, settings) as adapter:
            yield from adapted_scores(self.loaded, lines, adapter, **options)

    def _settings(self, options: dict[str, Any], *, protocol: str, **tuning: Any) -> Adaptation:
        settings, _ = resolve_tuning(self.loaded, adaptation_settings(**options), protocol=protocol, **tuning)
        return settings

    def tune_cache(
        self,
        source: str | PathLike | Iterable[str],
        *,
        protocol: str = "stream",
        rows: int | None = None,
        batch_size: int = 64,
        **adaptation: Any,
    ) -> CacheTuning:
        """What `--tune-cache` does: the cache's `theta` and `lam` chosen on a validation text (a file, `-`, or
        lines) under `protocol` (`"sentence"`: as `score` reads lines), with the `ppl` they give there and
        `plain_ppl` without the cache.  Needs `cache=W`; a `cache_theta` or `cache_lambda` given is kept."""
        return tune_cache(
            self.loaded, adaptation_settings(**adaptation), source, protocol=protocol, rows=rows, batch_size=batch_size
        )

    def token_scores(
        self, line: str, *, words: bool = False, bos_eos: bool = True, **adaptation: Any
    ) -> list[TokenScore]:
        """Each token of one line with its log-prob (`nlm score --per-token`); with `words`, the char or subword
        pieces of each word summed into the word (`--per-word`).  The last row is `<eos>`."""
        (score,) = self.iter_scores([line], bos_eos=bos_eos, per_token=True, **adaptation)
        return self.tokens_of(score, words=words, bos_eos=bos_eos)

    def tokens_of(self, score: SentenceScore, *, words: bool = False, bos_eos: bool = True) -> list[TokenScore]:
        """The per-token (or per-word) rows of a SentenceScore from `iter_scores(..., per_token=True)`."""
        return token_rows(score, self.vocab, bos_eos=bos_eos, words=words)

    def score_signature(self, *, bos_eos: bool = True, **adaptation: Any) -> str:
        """The signature `nlm score` prints: model, vocabulary and how sentences were scored (and adapted)."""
        return protocol_signature(self.loaded, bos_eos=bos_eos, adapted=adaptation_settings(**adaptation).describe())

    # -- nlm perplexity ---------------------------------------------------------------------------

    def perplexity(
        self,
        lines_or_path: str | PathLike | Iterable[str],
        *,
        protocol: str = "stream",
        batch_size: int = 64,
        rows: int | None = None,
        **adaptation: Any,
    ) -> Perplexity:
        """Corpus perplexity, as `nlm perplexity`: a file (a str or path; `-` is stdin) or a list of lines.

        `protocol="stream"` is the training-validation protocol (one stream, the state carried, in
        `rows` parallel rows: by default the model's validation rows, one under dynamic evaluation);
        `"sentence"` scores each line from a fresh state, as `score`.  The result has `ppl`, `loss`
        (nats per token), `tokens`, `oovs`, `signature`, and the measures comparable across
        vocabularies: `bits_per_byte` (over `bytes`) and `word_ppl` (over `words`).  `adaptation`:
        the cache pointer and dynamic evaluation (module docstring)."""
        settings = self._settings(adaptation, protocol=protocol, rows=rows, batch_size=batch_size)
        with adapted(self.loaded, settings) as adapter:
            return corpus_perplexity(
                self.loaded, lines_or_path, protocol=protocol, batch_size=batch_size, rows=rows, adapter=adapter
            )

    # -- nlm generate -----------------------------------------------------------------------------

    def generate(
        self,
        prompts: str | Iterable[str],
        *,
        greedy: bool = True,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        beam: int = 0,
        length_penalty: float = 0.6,
        max_tokens: int = 50,
        num: int = 1,
        seed: int | None = None,
    ) -> list[Generation]:
        """Continue each prompt (one string, or an iterable of them), as `nlm generate`: `num` results per prompt,
        in prompt order.  Greedy by default, as the command; `greedy=False` samples (`temperature`, `top_k`,
        `top_p`; `seed` makes it repeatable); `beam=N` keeps N hypotheses and returns the `num` best,
        ranked by GNMT's length-normalised score (`length_penalty` alpha; 0: by log-prob).  Each result has
        `prompt`, `text` (prompt + continuation), `continuation`, `tokens`, `logprob` (the continuation's,
        `<eos>` included when it ended) and `ended` (stopped at `<eos>` rather than `max_tokens`)."""
        config = SamplingConfig(
            greedy=greedy,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            beam=beam,
            length_penalty=length_penalty,
            max_tokens=max_tokens,
            num=num,
            seed=seed,
        )
        return list(self.iter_generations(prompts, config=config))

    def iter_generations(self, prompts: str | Iterable[str], *, config: SamplingConfig) -> Iterator[Generation]:
        """`generate` as a stream, with the options as one SamplingConfig."""
        return generate(self.loaded, _lines(prompts), config=config)

    # -- nlm next ---------------------------------------------------------------------------------

    def next_tokens(self, context: str, *, k: int = 10, start: bool = True) -> list[tuple[str, float]]:
        """The `k` most likely next tokens after `context`, with their natural log-probs, most likely first,
        as `nlm next --top K`.  The probabilities are the model's softmax over its whole vocabulary; for char
        and subword models the tokens are pieces.  The context follows the start symbol `score` puts before a
        sentence; `start=False` conditions on the context alone."""
        (result,) = self.iter_next_tokens([context], k=k, start=start)
        return list(result.tokens)

    def iter_next_tokens(
        self, contexts: Iterable[str], *, k: int = 10, start: bool = True, batch_size: int = 64
    ) -> Iterator[NextTokens]:
        """`next_tokens` for many contexts, batched, in input order, each with its index and OOV count."""
        return next_tokens(self.loaded, contexts, k=k, start=start, batch_size=batch_size)


def load(path: str | PathLike, *, device: str = "cpu", precision: str = "fp32") -> LanguageModel:
    """Load a language model trained by nlm: a run folder (its best.pt, else last.pt) or a checkpoint file
    (`nlm export`'s too), exactly as `-m` takes it.  `device` is cpu, cuda, cuda:N, mps or auto (CUDA, then
    MPS, then the CPU).  `precision` is what it computes in, as `--precision`: fp32, bf16, or auto (bf16
    where the device does it natively); every signature names it.

    Raises `nlm.NlmError`: exit code 66 for a missing file, 65 for one that is not a language model."""
    return LanguageModel(load_language_model(path, device=pick_device(device), precision=precision))
