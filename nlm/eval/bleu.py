"""BLEU and chrF through sacrebleu's own metric classes, each score with its reproducibility signature."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from nlm.errors import ConfigError, DataError
from nlm.io.text import display_name, read_lines

# name -> builder(tokenize, lowercase, sentence_level); tokenize applies to BLEU only.
# Sentence-level BLEU uses effective order, as `sacrebleu --sentence-level` does.
METRICS: dict[str, Callable[[str | None, bool, bool], Metric]] = {
    "bleu": lambda tokenize, lowercase, sentence: BLEU(
        tokenize=tokenize, lowercase=lowercase, effective_order=sentence
    ),
    "chrf": lambda tokenize, lowercase, sentence: CHRF(lowercase=lowercase),
    "chrf++": lambda tokenize, lowercase, sentence: CHRF(word_order=2, lowercase=lowercase),
    "ter": lambda tokenize, lowercase, sentence: TER(),  # sacrebleu's defaults: case-insensitive
}
TOKENIZERS = tuple(BLEU.TOKENIZERS)


@dataclass(frozen=True)
class MetricScore:
    """One metric's score: the number, sacrebleu's own line for it, and its signature."""

    metric: str  # our name: bleu, chrf, chrf++
    name: str  # sacrebleu's name: BLEU, chrF2, chrF2++
    score: float
    verbose: str  # e.g. "BLEU = 7.81 28.6/8.3/5.0/3.1 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)"
    signature: str  # e.g. "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    details: dict = field(default_factory=dict)  # BLEU: n-gram counts and totals, precisions, bp, sys_len, ref_len

    def line(self) -> str:
        """sacrebleu's text format: `BLEU|nrefs:1|...|version:2.6.0 = 22.3 ...`."""
        return f"{self.name}|{self.signature} = {self.verbose.split(' = ', 1)[1]}"

    def to_dict(self) -> dict:
        """sacrebleu's JSON format."""
        return {
            "name": self.name,
            "score": round(self.score, 4),
            "signature": self.signature,
            "verbose_score": self.verbose,
        }


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """`bleu,chrf` -> ["bleu", "chrf"], each a key of METRICS."""
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; choose from {', '.join(METRICS)}")
    return names


def build_metrics(
    names: Sequence[str], *, tokenize: str | None = None, lowercase: bool = False, sentence: bool = False
) -> dict[str, Metric]:
    if tokenize is not None and tokenize not in TOKENIZERS:
        raise ConfigError(f"--tokenize must be one of {', '.join(TOKENIZERS)}, not {tokenize!r}")
    try:
        return {n: METRICS[n](tokenize, lowercase, sentence) for n in parse_metrics(names)}
    except (ImportError, RuntimeError) as e:  # e.g. ja-mecab without its optional package
        raise ConfigError(f"sacrebleu cannot use --tokenize {tokenize}: {e}") from None


_DETAILS = ("counts", "totals", "precisions", "bp", "sys_len", "ref_len")


def _score(metric: str, scorer: Metric, result) -> MetricScore:
    details = {k: getattr(result, k) for k in _DETAILS if hasattr(result, k)}
    return MetricScore(
        metric=metric,
        name=result.name,
        score=float(result.score),
        verbose=str(result),
        signature=str(scorer.get_signature()),
        details=details,
    )


def corpus_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    metrics: Sequence[str] = ("bleu",),
    tokenize: str | None = None,
    lowercase: bool = False,
) -> list[MetricScore]:
    """Corpus-level scores; `references` holds one stream per reference set, each as long as `hypotheses`."""
    check_parallel(hypotheses, references)
    scorers = build_metrics(metrics, tokenize=tokenize, lowercase=lowercase)
    return [_score(n, s, s.corpus_score(list(hypotheses), [list(r) for r in references])) for n, s in scorers.items()]


def sentence_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    metrics: Sequence[str] = ("bleu",),
    tokenize: str | None = None,
    lowercase: bool = False,
) -> Iterator[list[MetricScore]]:
    """Each hypothesis's scores against its own references, in order."""
    check_parallel(hypotheses, references)
    scorers = build_metrics(metrics, tokenize=tokenize, lowercase=lowercase, sentence=True)
    for i, hypothesis in enumerate(hypotheses):
        refs = [r[i] for r in references]
        yield [_score(n, s, s.sentence_score(hypothesis, refs)) for n, s in scorers.items()]


def check_parallel(hypotheses: Sequence[str], references: Sequence[Sequence[str]], names: Sequence[str] = ()) -> None:
    """Every reference stream must have one line per hypothesis; DataError otherwise."""
    if not references:
        raise DataError("at least one reference is needed")
    for k, stream in enumerate(references):
        if len(stream) != len(hypotheses):
            name = names[k + 1] if len(names) > k + 1 else f"reference {k + 1}"
            hyp = names[0] if names else "the hypotheses"
            raise DataError(
                f"{name} has {len(stream)} lines but {hyp} has {len(hypotheses)}; "
                "BLEU needs one reference line per hypothesis line"
            )


def read_parallel(hypothesis: str | Path, references: Sequence[str | Path]) -> tuple[list[str], list[list[str]]]:
    """Read a hypothesis file (`-` for stdin) and its reference files, checking they are parallel."""
    hyps = list(read_lines(hypothesis))
    refs = [list(read_lines(path, allow_empty=True)) for path in references]
    check_parallel(hyps, refs, [display_name(p) for p in (hypothesis, *references)])
    return hyps, refs
