"""Outputs that cannot be written: full disks, file-size limits, unwritable caches, folders and inputs as outputs.

Each case is one line on stderr and an exit code, and the previous file (or run) is unchanged, with no temporary
file of the atomic writer left behind.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cli_helpers import (
    TIMEOUT,
    TINY_LM,
    default_sigint,
    leftovers,
    nlm,
    nlm_popen,
    nlm_process,
    one_line_error,
    says_one_line,
)
from lm_helpers import SOURCE

from nlm.autoencode.inference import encode_images, load_autoencoder, write_codes
from nlm.errors import OutputExistsError
from nlm.images.data import load_images
from nlm.io.atomic import check_distinct
from nlm.lm.generation import SamplingConfig, evaluate_generation
from nlm.lm.loading import load_language_model


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_74(corpus):
    limit = 20_000  # bytes: the vocabulary and config fit, a checkpoint does not

    def small_files() -> None:
        default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = nlm_popen(
        "train",
        "--train",
        corpus / "train.txt",
        "-o",
        corpus / "run",
        "--epochs",
        "1",
        "-q",
        "--cache-dir",
        corpus / "cache",
        cwd=corpus,
        stderr=subprocess.PIPE,
        preexec_fn=small_files,
    )
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 74, stderr
    assert b"cannot write" in stderr and b"File too large" in stderr and b"Traceback" not in stderr
    assert not (corpus / "run").exists()


def test_score_to_a_full_disk_is_one_line_and_74(finished_run, corpus):
    run, _ = finished_run
    with open("/dev/full", "w") as full:
        process = nlm_popen("score", "-m", run, corpus / "valid.txt", cwd=corpus, stdout=full, stderr=subprocess.PIPE)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 74, stderr
    assert stderr.decode().strip() == "nlm: error: cannot write the output: No space left on device"


def test_an_output_folder_under_a_file_is_one_line_and_73(corpus):
    one_line_error(
        nlm("train", "--train", corpus / "train.txt", "-o", corpus / "train.txt" / "run", *TINY_LM), 73, "cannot create"
    )


def test_an_unwritable_cache_names_the_folder_and_the_way_out(lm_run, markov_corpus, tmp_path):
    blocked = tmp_path / "a-file" / "cache"  # under a regular file: ENOTDIR, which root cannot override
    (tmp_path / "a-file").write_text("")
    result = nlm("perplexity", "-m", lm_run, markov_corpus[1], env={"NLM_CACHE_DIR": str(blocked)})
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {blocked}", "--cache-dir", "NLM_CACHE_DIR")
    result = nlm(
        "train",
        "--train",
        markov_corpus[0],
        "-o",
        tmp_path / "run",
        "--cache-dir",
        blocked,
        "--device",
        "cpu",
        *TINY_LM,
        "--epochs",
        "1",
    )
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {blocked}", "--cache-dir")
    assert (tmp_path / "a-file").read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_names_the_folder(lm_run, markov_corpus, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = nlm("perplexity", "-m", lm_run, markov_corpus[1], env={"NLM_CACHE_DIR": str(cache)})
    finally:
        cache.chmod(0o755)
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"corpus cache {cache}", "NLM_CACHE_DIR")
    assert list(cache.iterdir()) == []


@pytest.fixture
def full_device_link(tmp_path) -> Path:
    """A symbolic link to /dev/full: nlm must write through it (ENOSPC), never replace the link or the device."""
    if not Path("/dev/full").exists() or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full here")
    link = tmp_path / "full.out"
    link.symlink_to("/dev/full")
    yield link
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("command", ["vocab build", "autoencoder encode", "autoencoder reconstruct"])
def test_a_full_disk_is_one_line_and_exit_74(command, full_device_link, markov_corpus, ae_run):
    args = {
        "vocab build": ["vocab", "build", markov_corpus[0]],
        "autoencoder encode": ["autoencoder", "encode", "-m", ae_run, "--data", "generated:8"],
        "autoencoder reconstruct": ["autoencoder", "reconstruct", "-m", ae_run, "--data", "generated:8"],
    }[command]
    result = nlm(*args, "-o", full_device_link)
    assert result.exit_code == 74, result.stderr
    says_one_line(result.stderr, f"cannot write {full_device_link}", "No space left on device")
    assert leftovers(full_device_link.parent) == []


def test_a_device_output_is_written_through_not_replaced(markov_corpus, tmp_path):
    link = tmp_path / "null.out"
    link.symlink_to(os.devnull)
    result = nlm("vocab", "build", markov_corpus[0], "-o", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and stat.S_ISCHR(os.stat(os.devnull).st_mode) and leftovers(tmp_path) == []


def _limit_file_size(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_file_size_limit_keeps_the_previous_vocabulary(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"w{i:05d} w{i + 1:05d}\n" for i in range(0, 30_000, 2)))  # a 270 KB vocabulary
    out = tmp_path / "v.txt"
    out.write_bytes(b"<pad>\t0\nthe previous vocabulary\t1\n")
    before = out.read_bytes()
    done = nlm_process("vocab", "build", big, "-o", out, preexec_fn=_limit_file_size(64 << 10))
    assert done.returncode == 74, done.stderr
    says_one_line(done.stderr, f"cannot write {out}", "File too large")
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_a_file_size_limit_keeps_the_previous_codes(ae_run, images, tmp_path):
    out = tmp_path / "codes.npy"
    out.write_bytes(b"the previous codes")
    done = nlm_process(
        "autoencoder",
        "encode",
        "-m",
        ae_run,
        "--data",
        images,
        "-o",
        out,
        "--device",
        "cpu",
        preexec_fn=_limit_file_size(16 << 10),
    )
    assert done.returncode == 74, done.stderr
    says_one_line(done.stderr, f"cannot write {out}", "File too large")
    assert out.read_bytes() == b"the previous codes" and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
def test_a_folder_as_the_output_is_one_line_and_exit_73(command, ae_run, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    result = nlm("autoencoder", command, "-m", ae_run, "--data", "generated:8", "-o", folder)
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, f"{folder} is a folder")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "kept"


def test_vocab_build_refuses_to_overwrite_its_input(markov_corpus, tmp_path):
    train = tmp_path / "train.txt"
    train.write_bytes(markov_corpus[0].read_bytes())
    (tmp_path / "hard-link.txt").hardlink_to(train)
    (tmp_path / "soft-link.txt").symlink_to(train)
    for output, extra in [
        (train, []),
        (tmp_path / "." / "train.txt", []),
        (tmp_path / "hard-link.txt", []),
        (tmp_path / "soft-link.txt", []),
        (tmp_path / "valid.txt", ["--check", tmp_path / "valid.txt"]),
    ]:
        if extra:
            output.write_text("the validation text\n")
        before = output.read_bytes()
        result = nlm("vocab", "build", train, "-o", output, *extra)
        assert result.exit_code == 73, (output, result.stderr)
        says_one_line(result.stderr, "is also an input")
        assert output.read_bytes() == before
    assert train.read_bytes() == markov_corpus[0].read_bytes()


def test_check_distinct_compares_files_not_names(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    for output, inputs in [
        (a, [b]),
        ("-", ["-", a]),
        (None, [a]),
        (a, [None, "-", "generated:10"]),
        (tmp_path / "new.txt", [a]),
        (os.devnull, [os.devnull]),
    ]:
        check_distinct(output, inputs)  # distinct: no error
    monkeypatch.chdir(tmp_path)
    for output, inputs in [(a, [b, a]), ("a.txt", [a]), (a, ["./a.txt"]), (tmp_path / "new.txt", ["new.txt"])]:
        with pytest.raises(OutputExistsError, match="is also an input"):
            check_distinct(output, inputs)


def test_codes_and_hypotheses_never_overwrite_an_input(ae_run, lm_run, images, tmp_path):
    loaded = load_autoencoder(ae_run)
    codes = encode_images(loaded, load_images(str(images)))
    data_before, model_before = images.read_bytes(), loaded.path.read_bytes()
    for target in (images, loaded.path):
        with pytest.raises(OutputExistsError, match="is also an input"):
            write_codes(codes, target, sources=[images, loaded.path])
    assert images.read_bytes() == data_before and loaded.path.read_bytes() == model_before
    refs = tmp_path / "refs.txt"
    refs.write_text("".join(s + "\n" for s in SOURCE.sample(3, seed=1)))
    lines = refs.read_text().splitlines()
    with pytest.raises(OutputExistsError, match="refs.txt is also an input"):
        evaluate_generation(
            load_language_model(lm_run),
            lines,
            lines,
            config=SamplingConfig(greedy=True, max_tokens=3),
            names=(str(refs), str(refs)),
            hyps=refs,
        )
    assert refs.read_text().splitlines() == lines


@pytest.mark.parametrize("case", ["encode -o DATA", "encode -o MODEL", "reconstruct -o MODEL", "evaluate --hyps REFS"])
def test_the_cli_refuses_an_output_that_is_an_input(case, ae_run, lm_run, images, tmp_path):
    refs = tmp_path / "refs.txt"
    refs.write_text("".join(s + "\n" for s in SOURCE.sample(3, seed=1)))
    ae_run, images = shutil.copytree(ae_run, tmp_path / "ae"), Path(shutil.copy(images, tmp_path))  # copies to spoil
    model = ae_run / "best.pt"
    target, args = {
        "encode -o DATA": (images, ["autoencoder", "encode", "-m", ae_run, "--data", images, "-o", images]),
        "encode -o MODEL": (model, ["autoencoder", "encode", "-m", ae_run, "--data", images, "-o", model]),
        "reconstruct -o MODEL": (model, ["autoencoder", "reconstruct", "-m", ae_run, "--data", images, "-o", model]),
        "evaluate --hyps REFS": (refs, ["evaluate", "-m", lm_run, "--prompts", refs, "--refs", refs, "--hyps", refs]),
    }[case]
    before = target.read_bytes()
    result = nlm(*args)
    assert target.read_bytes() == before
    assert result.exit_code == 73, result.stderr
    says_one_line(result.stderr, "is also an input")
