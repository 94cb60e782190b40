"""Every command and option is documented: in --help and in the README."""

from __future__ import annotations

import re

import click
import pytest
from conftest import ROOT

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
