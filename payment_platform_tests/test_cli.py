"""`payment-platform` takes the local dev stack's subcommands (devstack/) from the entry-point group
`payment_platform.commands`; without devstack each of them says, in one line, how to get it."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from payment_platform import cli


def _subcommands(parser) -> dict:
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_the_installed_devstack_brings_its_subcommands():
    names = {entry.name for entry in cli.entry_points(group=cli.COMMAND_GROUP)}
    assert {"stack", "demo", "hbase-gateway"} <= names
    parser = cli.build_parser()
    assert set(cli.DEV_STACK_COMMANDS) <= set(_subcommands(parser))
    for argv in (["up"], ["stack", "status"], ["demo"], ["hbase-gateway", "--port", "9090", "--data-dir", "d"]):
        assert parser.parse_args(argv).func.__module__.startswith("devstack."), argv


@pytest.mark.parametrize("argv", [["up", "--data-dir", "x"], ["stack", "status"], ["demo"],
                                  ["hbase-gateway", "--port", "9090"]])
def test_without_devstack_its_commands_say_how_to_install_it(monkeypatch, capsys, argv):
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"payment-platform {argv[0]}: error: `{argv[0]}` is part of the local dev stack: "
                     f"{cli.DEV_STACK_INSTALL}"]


def test_a_stale_entry_point_leaves_the_product_commands_working(monkeypatch, capsys):
    stale = EntryPoint(name="stack", value="devstack_removed_from_disk.cli:register", group=cli.COMMAND_GROUP)
    monkeypatch.setattr(cli, "entry_points", lambda group: [stale])
    assert cli.main(["scaling", "--hbase-shell"]) == 0
    assert "create " in capsys.readouterr().out
    assert cli.main(["stack", "up"]) == 2
    error = capsys.readouterr().err
    assert "pip install -e ./devstack" in error and "devstack_removed_from_disk" in error
