"""Paths a command may write (A.18): never one of its own inputs (interactions, items,
events, solution, filter file, job input), never another output of the same job, and
`train -o` replaces only a pbatch solution. A refusal is a usage error (exit 2) whose
one line names both paths, found before anything is read or written.

Two paths are the same when they name the same file: for local paths, the same inode
where both exist (a hard link, a symlink, `./x` and `x`), else the same resolved path;
for S3, the same bucket and key.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from .. import storage
from ..errors import StorageError, UsageError

NEVER_INPUTS = "pbatch never writes over a command's own inputs"


@dataclass(frozen=True)
class Named:
    """A path and how a message names its role ("the solution", "--errors-to")."""

    role: str
    path: str


def _key(path: str) -> tuple[str, ...]:
    if storage.is_s3(path):
        bucket, key = storage.split_s3(path)
        return ("s3", bucket, key)
    return ("file", os.path.realpath(path))


def same(a: str, b: str) -> bool:
    """Whether two paths (local or s3://) name the same file or object."""
    if a == "-" or b == "-":
        return a == b
    if storage.is_s3(a) != storage.is_s3(b):
        return False
    if not storage.is_s3(a):
        try:
            return os.path.samefile(a, b)
        except OSError:  # one of them does not exist (yet)
            pass
    return _key(a) == _key(b)


def check_disjoint(outputs: Iterable[Named], inputs: Iterable[Named], fix: str) -> None:
    """Refuse an output that is one of the inputs, or that another output also names."""
    outputs, inputs = list(outputs), [i for i in inputs if i.path]
    for k, out in enumerate(outputs):
        for given in inputs:
            if same(out.path, given.path):
                raise UsageError(
                    f"{out.role} {out.path} is {given.role} {given.path}: {NEVER_INPUTS}; {fix}"
                )
        for other in outputs[k + 1 :]:
            if same(out.path, other.path):
                what = "stdout" if out.path == "-" else "the same file"
                raise UsageError(
                    f"{out.role} {out.path} and {other.role} {other.path} are {what}: each "
                    f"output of a job needs its own path; {fix}"
                )


def _is_dir(path: str) -> bool:
    return not storage.is_s3(path) and path != "-" and os.path.isdir(path)


def _names_folder(path: str) -> bool:
    """A local path that is a folder or is spelt as one (a trailing separator): no
    file can be written there."""
    return not storage.is_s3(path) and (path.endswith(("/", os.sep)) or _is_dir(path))


@dataclass(frozen=True)
class JobPaths:
    """What a batch inference job reads and writes, and how messages name them: the
    CLI's options (`api=False`) or the request's members (SDK, aws-shaped commands,
    console)."""

    inputs: list[str]  # the input files (local or s3://) the job reads
    outputs: list[str]  # each input's NAME.out (or "-")
    output: str  # the output folder or prefix, or "-"
    solution: str | None = None
    events: str | None = None
    filter_file: str | None = None
    errors_to: str | None = None
    api: bool = False


def check_job(j: JobPaths) -> None:
    """A job's outputs are none of its inputs and none of each other (A.18)."""
    api = j.api
    if _is_file(j.output):
        role = "jobOutput" if api else "--output"
        raise UsageError(
            f"{role} {j.output} is a file; it takes a folder, where each input NAME gives NAME.out"
        )
    if j.errors_to is not None and _names_folder(j.errors_to):
        raise UsageError(f"--errors-to {j.errors_to} is a folder; give a file name")
    inputs = [Named("the input" if not api else "jobInput", url) for url in j.inputs]
    inputs += [
        Named("the solution" if not api else "solutionVersionArn", j.solution or ""),
        Named("the --events file", j.events or ""),
        Named("the --filter-file" if not api else "filterArn", j.filter_file or ""),
    ]
    outputs = [Named("the output", url) for url in j.outputs if url != "-"]
    if j.errors_to is not None:
        outputs.append(Named("--errors-to", j.errors_to))
        if j.output == "-":
            outputs.append(Named("--output", "-"))
    fix = "choose another jobOutput" if api else "choose another path"
    check_disjoint(outputs, inputs, fix)


def _is_file(path: str) -> bool:
    return not storage.is_s3(path) and path != "-" and os.path.exists(path) and not _is_dir(path)


def is_solution_file(path: str) -> bool:
    """Whether a file is a pbatch solution (a zip of .npy members with format_version and
    meta), also one cut short: its first member is format_version.npy, as `train`
    writes it."""
    try:
        with open(path, "rb") as f:
            head = f.read(30 + 64)
    except OSError:
        return False
    if len(head) >= 30 and head[:4] == b"PK\x03\x04":
        (length,) = struct.unpack("<H", head[26:28])
        if head[30 : 30 + length] == b"format_version.npy":
            return True
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return {"format_version.npy", "meta.npy"} <= names


def check_train_output(output: str, inputs: Iterable[Named]) -> None:
    """`pbatch train -o`: a local file name, not one of the training inputs; an existing
    file there must be a pbatch solution (it is replaced by renaming the new one over
    it). Checked before the fit, so a wrong -o costs no training time."""
    if output == "-":
        raise UsageError("-o -: a solution is a file (a zip), not a stream; give a file name")
    if storage.is_s3(output):
        raise UsageError(
            f"-o {output}: pbatch train writes a local file; copy it to S3 afterwards "
            "(run and the SDK read s3:// solutions)"
        )
    if _names_folder(output):
        example = os.path.join(output, "model.npz")
        raise UsageError(f"-o {output} names a folder; give a file name, e.g. {example}")
    folder = os.path.dirname(output) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"-o {output}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write {output}: permission denied in folder {folder}")
    check_disjoint([Named("-o", output)], inputs, "choose another -o")
    if os.path.lexists(output) and not is_solution_file(output):
        raise UsageError(
            f"-o {output} exists and is not a pbatch solution; pbatch train replaces only "
            "solutions: remove it or choose another -o"
        )


def check_train(
    output: str, interactions: str, items: str | None, hpo_config: str | None = None
) -> None:
    """check_train_output for `pbatch train`'s own inputs."""
    check_train_output(
        output,
        [
            Named("the --interactions file", interactions),
            Named("the --items file", items or ""),
            Named("the --hpo-config file", hpo_config or ""),
        ],
    )
