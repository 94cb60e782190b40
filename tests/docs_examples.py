"""Run the console examples of a Markdown document and compare what they print.

A ```console block holds `$ command` lines, each followed by what it prints (stdout and
stderr together, as a terminal shows them). A command continues on the next line after
a trailing `\\`, and a here-document (`<<'EOF'`) runs to its terminator. The commands of
a document run in order, each in `bash -c`, in one sandbox folder, so that a solution
trained by one block is used by the next; `$?` is the previous command's exit code.

In the expected text, `…` stands for any text within its line, and a line holding only
`…` for any number of lines. Both sides are normalised first (NORMALISE): times, dates,
durations, default job names, hashes, uuids, pids of temporary files, and the sandbox's
path (shown as `/…`).

Markers on the line before a block: `<!-- not run: REASON -->` skips a console block;
`<!-- file: NAME -->` before any other block writes its text to NAME in the sandbox
first (a script that a later block runs).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (.+) -->$")
FILE = re.compile(r"^<!-- file: (\S+) -->$")
HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d| UTC)?"), "DATE"),
    (re.compile(r"pbatch-\d{8}-\d{6}-[0-9a-f]{6}"), "pbatch-JOBNAME"),
    (re.compile(r"\b\d+\.\d\ds\b"), "N.NNs"),
    (re.compile(r'"durationSeconds": [0-9.]+'), '"durationSeconds": N'),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "SHA256"),
    (re.compile(r"\.\d+\.[0-9a-f]{8}\.tmp\b"), ".PID.RANDOM.tmp"),
]


@dataclass
class Command:
    text: str
    expected: list[str]
    start: int  # the document's line index of the first expected line
    end: int  # one past the last


@dataclass
class Block:
    kind: str
    line: int
    skip: str | None = None
    file: str | None = None
    body: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)


def parse(lines: list[str]) -> list[Block]:
    """The fenced blocks of a document, with the commands of its console blocks."""
    blocks, k = [], 0
    while k < len(lines):
        fence = FENCE.match(lines[k])
        if not fence or not fence.group(1):
            k += 1
            continue
        before = lines[k - 1] if k else ""
        block = Block(fence.group(1), k)
        if m := NOT_RUN.match(before):
            block.skip = m.group(1)
        if m := FILE.match(before):
            block.file = m.group(1)
        end = k + 1
        while not lines[end].startswith("```"):
            end += 1
        block.body = lines[k + 1 : end]
        if block.kind == "console":
            block.commands = _commands(block.body, k + 1)
        blocks.append(block)
        k = end + 1
    return blocks


def _commands(body: list[str], first: int) -> list[Command]:
    commands: list[Command] = []
    k = 0
    while k < len(body):
        line = body[k]
        if not line.startswith("$ "):
            raise ValueError(f"line {first + k + 1}: output before any `$ command`")
        text = [line[2:]]
        while text[-1].endswith("\\"):
            k += 1
            text.append(body[k])
        heredoc = HEREDOC.search(" ".join(text))
        if heredoc:
            while body[k] != heredoc.group(1):
                k += 1
                text.append(body[k])
        k += 1
        start = k
        while k < len(body) and not body[k].startswith("$ "):
            k += 1
        commands.append(Command("\n".join(text), body[start:k], first + start, first + k))
    return commands


def normalise(text: str, sandbox: Path) -> str:
    for path in {str(sandbox.resolve()), str(sandbox)}:
        text = text.replace(path, "/…")
    for pattern, replacement in NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def matches(expected: list[str], actual: str, sandbox: Path) -> bool:
    """Whether the output matches the expected lines, `…` as wildcards."""
    pieces = []
    for line in normalise("\n".join(expected), sandbox).split("\n") if expected else []:
        if line.strip() == "…":
            pieces.append(r"(?:[^\n]*\n)*?")
        else:
            pieces.append("[^\n]*?".join(re.escape(part) for part in line.split("…")) + "\n")
    text = normalise(actual, sandbox)
    if text and not text.endswith("\n"):
        text += "\n"
    return re.fullmatch("".join(pieces), text) is not None


def sandbox_env(sandbox: Path, python: str) -> dict[str, str]:
    """PATH with `pbatch` and `python` shims that run this interpreter's pbatch."""
    bin_dir = sandbox / ".bin"
    bin_dir.mkdir(exist_ok=True)
    for name, command in (("pbatch", f'"{python}" -m personalize_batch.cli'), ("python", python)):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PBATCH_"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        PBATCH_HOME=str(sandbox / ".home"),
        PYTHONUNBUFFERED="1",  # stdout and stderr in the order they were written
        COLUMNS="80",
    )
    return env


@dataclass
class Result:
    command: Command
    output: str
    ok: bool


def run(document: Path, sandbox: Path, python: str) -> list[Result]:
    """Run every console example of a document in order; each command's result."""
    lines = document.read_text(encoding="utf-8").split("\n")
    env = sandbox_env(sandbox, python)
    results, code = [], 0
    for block in parse(lines):
        if block.file is not None:
            (sandbox / block.file).write_text("\n".join(block.body) + "\n")
            continue
        if block.kind != "console" or block.skip is not None:
            continue
        for command in block.commands:
            done = subprocess.run(
                ["bash", "-c", f"(exit {code}); {command.text}"],
                cwd=sandbox,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=600,
            )
            code = done.returncode
            output = done.stdout.decode("utf-8", "replace")
            results.append(Result(command, output, matches(command.expected, output, sandbox)))
    return results


def update(document: Path, results: list[Result], sandbox: Path) -> int:
    """Write the output each failing example gives now in its place (the sandbox's path
    as `/…`); the number of examples rewritten."""
    lines = document.read_text(encoding="utf-8").split("\n")
    failed = [r for r in results if not r.ok]
    for result in sorted(failed, key=lambda r: -r.command.start):
        text = result.output.replace(str(sandbox.resolve()), "/…").replace(str(sandbox), "/…")
        new = text.split("\n")
        if new and new[-1] == "":
            new.pop()
        lines[result.command.start : result.command.end] = new
    document.write_text("\n".join(lines), encoding="utf-8")
    return len(failed)
