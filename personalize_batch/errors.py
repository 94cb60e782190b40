"""The exceptions a user can see, and every exit code (A.10): each exception carries
the code the CLI exits with, and a finished job or validation exits LINE_ERRORS when
some lines were error lines. The CLI's Group maps these, and nothing else decides one.
"""

from __future__ import annotations

LINE_ERRORS = 3  # the job finished, but some lines were answered with an error line
ABORTED = 130  # a prompt's Ctrl-C (click's Abort), as a shell reports SIGINT
# the reader of stdout went away (`| head`): stop quietly, with the code of a process
# ended by SIGPIPE, as `yes | head -1` leaves it (`set -o pipefail` sees it)
READER_GONE = 128 + 13


def lines_exit_code(lines_with_errors: int) -> int:
    """A finished job's or validation's exit code: 0 when every line was answered."""
    return LINE_ERRORS if lines_with_errors else 0


class PbatchError(Exception):
    """A failure the user can act on: printed as one line, no traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PbatchError):
    """Wrong options or arguments (click's convention: exit 2)."""

    exit_code = 2


class AlreadyExists(UsageError):
    """A job name that is already used (ResourceAlreadyExistsException in the SDK)."""


class InvalidNextToken(UsageError):
    """A nextToken that no listing gave (InvalidNextTokenException in the SDK)."""


class NotFound(PbatchError):
    """A job or solution that does not exist (ResourceNotFoundException in the SDK)."""


class WaiterFailed(PbatchError):
    """`pbatch wait` saw a terminal failure or ran out of attempts (exit 255, as aws-cli)."""

    exit_code = 255


class SolutionError(PbatchError):
    """A solution file that is missing, damaged or of an unknown format."""


class DataError(PbatchError):
    """Training data that cannot be read (names the file, line and reason)."""


class StorageError(PbatchError):
    """An input or output that cannot be read, listed or written (local or S3)."""


class JobFailed(PbatchError):
    """A batch inference job ended CREATE FAILED."""


class Interrupted(BaseException):
    """The job was stopped by a signal (exit 128 + signal number, as shells do).

    A BaseException, like KeyboardInterrupt: the signal handler raises it wherever the
    main thread is, and an `except Exception` there must not swallow it (botocore turns
    any Exception raised during a request into a retryable HTTPClientError: the stop
    was retried away and the job ran on). Catch it together with PbatchError.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return self.message
