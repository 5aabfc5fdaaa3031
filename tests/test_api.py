"""nlm's Python API (`import nlm`): light to import, the same numbers as the library and the commands,
one exception type with the command's message and exit code."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest
import torch
from cli_helpers import nlm as run_nlm
from conftest import REPO, write_grammar_corpus
from lm_helpers import HEADS, SOURCE, session_root, tiny_word_lm, train_tiny_lm

import nlm
from nlm.lm.loading import load_language_model
from nlm.lm.scoring import score_sentences


@pytest.fixture(scope="module", params=sorted(HEADS))
def lm(request, tmp_path_factory) -> nlm.LanguageModel:
    return nlm.load(tiny_word_lm(tmp_path_factory, request.param))


def test_import_nlm_loads_no_torch_and_lists_its_public_names():
    code = "import sys, nlm; print(sorted(m for m in ('torch', 'numpy', 'sentencepiece', 'rich') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    for name in nlm.__all__:
        value = getattr(nlm, name)
        if name != "__version__":
            assert inspect.getdoc(value), name
    for function in (nlm.load, nlm.train, *vars(nlm.LanguageModel).values()):
        if inspect.isfunction(function) and not function.__name__.startswith("_"):
            signature = inspect.signature(function)
            assert signature.return_annotation is not inspect.Signature.empty, function
            keyword = [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
            assert all(p.annotation is not inspect.Parameter.empty for p in keyword), function


def test_nlm_error_is_the_library_error_with_the_commands_message_and_exit_code(tmp_path):
    assert nlm.NlmError is nlm.errors.NLMError
    with pytest.raises(nlm.NlmError) as missing:
        nlm.load(tmp_path / "nothing-here")
    assert missing.value.exit_code == 66
    result = run_nlm("score", "-m", tmp_path / "nothing-here", input="a b\n")
    assert result.exit_code == 66 and result.stderr.strip() == f"nlm: error: {missing.value.message}"
    (tmp_path / "not.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(nlm.NlmError) as wrong:
        nlm.load(tmp_path / "not.pt")
    assert wrong.value.exit_code == 65


def test_scores_are_the_librarys_numbers_exactly(lm):
    lines = [*SOURCE.sample(20, seed=3), "", f"{SOURCE.words[0]} zzzunknown"]
    expected = list(score_sentences(load_language_model(lm.path), lines))
    scores = lm.score(lines)
    assert [s.logprob for s in scores] == [s.logprob for s in expected]
    assert [(s.tokens, s.oovs, s.text) for s in scores] == [(s.tokens, s.oovs, s.text) for s in expected]
    assert scores[-1].oovs == 1 and scores[-2].tokens == 1  # an empty line is <eos> alone
    assert scores[0].ppl == pytest.approx(math.exp(-scores[0].logprob / scores[0].tokens))
    (one,) = lm.score(lines[0])  # one string is one line
    assert one.logprob == pytest.approx(scores[0].logprob, abs=1e-4)  # alone, not in a batch: float rounding differs
    shorter = lm.score(lines[:3], bos_eos=False)
    assert [s.tokens for s in shorter] == [len(line.split()) - 1 for line in lines[:3]]


def test_token_scores_sum_to_the_sentence_and_name_the_tokens(lm):
    line = SOURCE.sample(1, seed=8)[0]
    rows = lm.token_scores(line)
    assert [r.token for r in rows] == [*line.split(), "<eos>"]
    assert math.fsum(r.logprob for r in rows) == pytest.approx(lm.score(line)[0].logprob, abs=1e-9)


def test_next_tokens_are_the_models_normalised_distribution(lm):
    context = " ".join(SOURCE.sample(1, seed=2)[0].split()[:3])
    everything = lm.next_tokens(context, k=len(lm.vocab))
    assert len(everything) == len(lm.vocab)
    assert math.fsum(math.exp(lp) for _, lp in everything) == pytest.approx(1.0, abs=1e-5)
    assert [lp for _, lp in everything] == sorted((lp for _, lp in everything), reverse=True)
    top = lm.next_tokens(context, k=3)
    assert top == everything[:3]
    # The probability of a word after the context is the one the scorer gives it in that place.
    word, logprob = top[1]
    rows = lm.token_scores(f"{context} {word}")
    assert rows[-2].token == word and rows[-2].logprob == pytest.approx(logprob, abs=1e-5)
    # Without the start symbol the context alone conditions the distribution.
    assert lm.next_tokens(context, k=3, start=False) != top
    with pytest.raises(nlm.NlmError, match="nothing to condition on"):
        lm.next_tokens("", start=False)
    (result,) = lm.iter_next_tokens([f"{context} zzzunknown"], k=2)
    assert result.oovs == 1 and len(result.tokens) == 2


def test_perplexity_takes_a_file_or_lines_and_generation_its_options(lm, tmp_path_factory):
    valid = session_root(tmp_path_factory) / "corpus" / "valid.txt"
    from_file = lm.perplexity(valid, protocol="sentence")
    from_lines = lm.perplexity(valid.read_text().splitlines(), protocol="sentence")
    assert from_file.ppl == pytest.approx(from_lines.ppl, rel=1e-12) and from_file.signature.startswith("protocol:")
    scored = lm.score(valid.read_text().splitlines())
    assert from_file.nats == pytest.approx(-math.fsum(s.logprob for s in scored), rel=1e-9)
    samples = lm.generate(["", SOURCE.words[0]], num=2, seed=5, max_tokens=6)
    assert [g.prompt for g in samples] == ["", "", SOURCE.words[0], SOURCE.words[0]]
    assert samples == lm.generate(["", SOURCE.words[0]], num=2, seed=5, max_tokens=6)
    (best,) = lm.generate(SOURCE.words[0], beam=3, max_tokens=6)
    (greedy,) = lm.generate(SOURCE.words[0], greedy=True, max_tokens=6)
    assert best.logprob >= greedy.logprob - 1e-6 or best.ended != greedy.ended


def test_the_api_defaults_are_the_commands_defaults():
    """Each keyword option of a LanguageModel method has the default of the command option of the same name."""
    from typer.main import get_command

    from nlm.cli import app

    commands = get_command(app).commands
    pairs = {"score": "score", "perplexity": "perplexity", "generate": "generate", "next_tokens": "next"}
    for method, command in pairs.items():
        params = {p.name: p.default for p in commands[command].params}
        for name, parameter in inspect.signature(getattr(nlm.LanguageModel, method)).parameters.items():
            if parameter.kind is parameter.KEYWORD_ONLY and name in params:
                default = params[name]
                default = getattr(default, "value", default)
                assert parameter.default == default or str(parameter.default) == str(default), (method, name)


# -- training ---------------------------------------------------------------------------------


TINY = dict(hidden=16, layers=1, dropout=0.0, batch_size=4, bptt=8, max_steps=6, epochs=20, device="cpu")


def test_nlm_train_writes_the_run_the_command_writes(tmp_path):
    train, valid = write_grammar_corpus(tmp_path, 120)
    summary = nlm.train(train=train, valid=valid, output=tmp_path / "api", quiet=True, optimizer="adam", **TINY)
    assert summary.run_dir == tmp_path / "api" and summary.stop_reason == "max-steps" and summary.steps == 6
    assert summary.best_loss is not None and summary.best_epoch == 1
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    result = run_nlm(
        "train", "--train", train, "--valid", valid, "-o", tmp_path / "cli", "-q", "--optimizer", "adam", *flags
    )
    assert result.exit_code == 0, result.stderr
    api, cli = (torch.load(tmp_path / name / "best.pt", weights_only=True) for name in ("api", "cli"))
    assert api["config"]["model"] == cli["config"]["model"] and api["config"]["train"] == cli["config"]["train"]
    assert all(torch.equal(api["model"][k], cli["model"][k]) for k in cli["model"])
    resumed = nlm.train(resume=tmp_path / "api", max_steps=9, quiet=True)
    assert resumed.steps == 9 and resumed.run_dir == tmp_path / "api"


@pytest.mark.parametrize(
    "options, code, words",
    [
        (dict(hiden=16), 2, "no option 'hiden'"),
        (dict(dropout=1.5), 2, "--dropout must be in [0, 1)"),
        (dict(vocab="v.txt", level="char"), 2, "--level build a vocabulary"),
        (dict(recipe="nope"), 2, "is not a recipe"),
    ],
)
def test_nlm_train_raises_the_commands_errors(tmp_path, options, code, words):
    train, valid = write_grammar_corpus(tmp_path, 40)
    with pytest.raises(nlm.NlmError) as error:
        nlm.train(train=train, output=tmp_path / "run", quiet=True, **{**TINY, **options})
    assert error.value.exit_code == code and words in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_in_use_or_taken_is_the_commands_error(tmp_path):
    train, _ = write_grammar_corpus(tmp_path, 40)
    nlm.train(train=train, output=tmp_path / "run", quiet=True, **TINY)
    with pytest.raises(nlm.NlmError) as taken:
        nlm.train(train=train, output=tmp_path / "run", quiet=True, **TINY)
    assert taken.value.exit_code == 73 and "--resume" in str(taken.value)


def test_a_char_model_from_python(tmp_path_factory):
    lm = nlm.load(train_tiny_lm(session_root(tmp_path_factory), "char", level="char"))
    text = f"{SOURCE.words[0]} {SOURCE.words[1]}"
    assert lm.vocab.decode(lm.vocab.encode(text)) == text
    pieces = lm.next_tokens(SOURCE.words[0][:2], k=len(lm.vocab))
    assert all(len(token) == 1 or token.startswith("<") for token, _ in pieces)
    words = lm.token_scores(f"{SOURCE.words[0]} {SOURCE.words[1]}", words=True)
    assert [w.token for w in words] == [SOURCE.words[0], SOURCE.words[1], "<eos>"]


def test_nlm_train_takes_the_options_of_nlm_train_with_the_same_defaults():
    from typer.main import get_command

    from nlm.api.options import option_names, train_configs
    from nlm.cli import app

    command = {p.name: getattr(p.default, "value", p.default) for p in get_command(app).commands["train"].params}
    options = {name for names in option_names().values() for name in names}
    runs = {"train", "valid", "vocab", "output", "resume", "finetune", "recipe", "force", "quiet", "cache_dir"}
    assert set(command) == options | runs
    assert train_configs({}) == train_configs({name: command[name] for name in options})
    assert set(inspect.signature(nlm.train).parameters) == runs | {"options"}
