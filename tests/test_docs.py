"""Docs that cannot drift: every command and option is documented (in --help and in the
README), the main commands show examples in --help, and the console examples of
README.md and docs/reference.md are run and their output compared (test_examples).

test_examples runs each document's `$ command` lines in order in a sandbox folder that
holds a copy of examples/, and compares what they print with the text under them, with
`…` standing for any text (a line of just `…`: any lines) and times, dates, durations,
default job names, hashes, uuids and the sandbox's path normalised (tests/docs_examples.py
says exactly how). `<!-- not run: REASON -->` before a block skips it; `<!-- file: NAME -->`
before a code block writes it to NAME for a later command.

After an intended change of output (a new line on stderr, other numbers), regenerate:

    PBATCH_UPDATE_DOCS=1 pytest tests/test_docs.py -k examples

rewrites each example that no longer matches with the output it gives now (the sandbox's
path shown as `/…`) and keeps the others as written; read the diff, shorten long outputs
with `…` where the README abbreviates, and commit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import click
import pytest
from conftest import EXAMPLES, ROOT
from docs_examples import run, update

from personalize_batch.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + name + " ")


COMMANDS = list(_commands(main))


@pytest.mark.parametrize("name, cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_and_option_has_help(name, cmd):
    assert cmd.help, f"pbatch {name} has no help"
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"pbatch {name} {param.opts[0]} has no help"


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_every_command_is_in_the_readme(name):
    assert f"pbatch {name}" in README


def test_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, re.S)
    assert "pbatch train" in blocks[0] and "pbatch run" in blocks[0]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert blocks[1].strip() == ci


DOCUMENTS = ["README.md", "docs/reference.md"]
UPDATE = os.environ.get("PBATCH_UPDATE_DOCS") == "1"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_examples(document, tmp_path):
    """Each console example prints what the document says it prints."""
    sandbox = tmp_path / "sandbox"
    shutil.copytree(EXAMPLES, sandbox / "examples", ignore=shutil.ignore_patterns("*.npz", "*.out"))
    results = run(ROOT / document, sandbox, sys.executable)
    assert results, f"{document} has no console example"
    failed = [r for r in results if not r.ok]
    if UPDATE and failed:
        update(ROOT / document, results, sandbox)
    report = "\n\n".join(
        f"$ {r.command.text}\n--- {document} says (line {r.command.start + 1}):\n"
        + "\n".join(r.command.expected)
        + "\n--- it prints:\n"
        + r.output
        for r in failed
    )
    assert not failed, f"{len(failed)} of {len(results)} examples differ:\n\n{report}"


MAIN_COMMANDS = [
    "run", "train", "evaluate", "validate", "describe", "recommend", "rank", "diff",
    "jobs list", "jobs describe", "jobs delete", "jobs prune", "console",
    "create-batch-inference-job", "create-batch-segment-job",
]  # fmt: skip


@pytest.mark.parametrize("name", MAIN_COMMANDS)
def test_main_commands_show_examples_that_use_their_own_options(name):
    cmd = dict(COMMANDS)[name]
    help_text = cmd.get_help(click.Context(cmd, info_name=f"pbatch {name}"))
    examples = help_text.split("Examples:\n", 1)
    assert len(examples) == 2, f"pbatch {name} --help shows no examples"
    known = {
        o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
    }
    lines = [line.strip() for line in examples[1].split("\n\n")[0].splitlines()]
    assert any(line.startswith(f"pbatch {name}") for line in lines)
    for line in lines:
        for token in re.findall(r"(?<![\w=/])(--?[a-zA-Z][\w-]*)", line.split("#")[0]):
            assert token in known, f"pbatch {name} --help: an example uses {token}"


@pytest.mark.parametrize(
    "recipe", ["user-personalization", "popularity-count", "personalized-ranking", "sims"]
)
def test_describe_recipe_lists_every_hyperparameter(recipe):
    from personalize_batch import recipes

    result = subprocess.run(
        [sys.executable, "-m", "personalize_batch.cli", "describe", "--recipe", recipe],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    params = recipes.recipe(recipe).hyperparameters.params
    shown = result.stdout.splitlines()[3:] if params else []
    assert [line.split()[0] for line in shown] == [p.name for p in params]
    for line, p in zip(shown, params, strict=True):
        assert line.split()[1] == (str(p.default).lower() if p.kind is bool else str(p.default))
        assert line.endswith(p.help)


def test_describe_recipe_shows_a_string_hyperparameters_values():
    result = subprocess.run(
        [sys.executable, "-m", "personalize_batch.cli", "describe", "--recipe", "trending-now"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "one of: auto, 30 minutes, 1 hour, 3 hours, 1 day" in result.stdout


def test_shell_completion_works_as_documented():
    """The README shows `eval "$(_PBATCH_COMPLETE=bash_source pbatch)"`."""
    assert "_PBATCH_COMPLETE=bash_source pbatch" in README
    env = {**os.environ, "_PBATCH_COMPLETE": "bash_complete", "COMP_WORDS": "pbatch jobs d"}
    env["COMP_CWORD"] = "2"
    done = subprocess.run(
        [sys.executable, "-m", "personalize_batch.cli"], env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["plain,delete", "plain,describe"]


# what would point outside the repository: the folder beside a checkout, absolute paths of
# one machine, a climb out of the repository from one of its folders
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])/work/|parent\.parent\.parent|parents\[[2-9]\]")


def test_the_repository_stands_alone():
    """A fresh clone has nothing beside it: no file may read or name anything outside
    it (the quality test once read a data folder beside the checkout; the data sets now
    live in datasets/)."""
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        hidden = any(part.startswith(".") and part != ".ci" for part in rel.parts)
        if hidden or rel.parts[0] in ("build", "dist") or not path.is_file():
            continue
        if "__pycache__" in rel.parts or ".egg-info" in str(rel) or path.suffix not in (
            ".py", ".md", ".toml", ".cfg", ".txt", ".json", ".yml", ".yaml", "",
        ):  # fmt: skip
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and "OUTSIDE" not in line:
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []
