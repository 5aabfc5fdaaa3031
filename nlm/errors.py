"""The errors nlm raises for things a user can fix, each with its exit code.

Library code raises these with one sentence that says what is wrong and what to do;
the CLI prints that sentence on stderr and exits with the class's code (sysexits.h
numbers where one fits), never with a traceback.
"""

from __future__ import annotations


class NLMError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The one-line message the command prints after `nlm: error: `."""
        return str(self)


class ConfigError(NLMError):
    """A nonsense option or hyperparameter (`--bptt 0`, `--dropout 1.5`)."""

    exit_code = 2


class InputMissingError(NLMError):
    """An input file that does not exist or cannot be opened."""

    exit_code = 66  # EX_NOINPUT


class DataError(NLMError):
    """Input that exists but cannot be used: empty, binary, undecodable, malformed."""

    exit_code = 65  # EX_DATAERR


class CheckpointError(DataError):
    """A checkpoint or vocabulary that is unreadable or does not fit the job."""


class OutputError(NLMError):
    """An output that cannot be written (no permission, a file where a folder should be)."""

    exit_code = 73  # EX_CANTCREAT


class OutputExistsError(OutputError):
    """An output that would overwrite another run's files, or an input."""


class RunBusyError(OutputError):
    """A run folder another nlm process is training in (it holds the folder's lock)."""


class WriteFailedError(OutputError):
    """A write that the disk failed: full, over a file-size limit, an I/O error."""

    exit_code = 74  # EX_IOERR


class DeviceError(NLMError):
    """A requested device (cuda, mps) that this machine does not have."""

    exit_code = 69  # EX_UNAVAILABLE


class OutOfMemoryError(NLMError):
    """A model, or a training step, that needs more memory than the machine (or its GPU) has."""

    exit_code = 69  # EX_UNAVAILABLE: like a missing device, a resource this machine lacks


class TrainingDivergedError(NLMError):
    """The loss became NaN or infinite, or stayed far above a uniform guess."""

    exit_code = 70  # EX_SOFTWARE


class Interrupted(NLMError):
    """Ctrl-C or SIGTERM: state was saved, and the process exits with 128 + the signal's number, as shells report it."""

    exit_code = 130
