"""The deployment pages of the docs name only real commands: every `payment-platform ...` and Dagster command
line in docs/deployment.md, capacity.md and operating.md parses with the real command-line parsers."""
from __future__ import annotations

import re
import shlex

import click
import pytest

from payment_platform_tests.test_docs.docs_files import DOCS

PAGES = ("deployment.md", "capacity.md", "operating.md")
PROGRAMS = ("payment-platform", "dagster", "dagster-daemon", "dagster-webserver")
# what may stand before a program on a line: a virtualenv path, or running it inside a container or pod
WRAPPER = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/|compose (?:exec|run --rm) \S+ |kubectl exec \S+ -- )?")


def doc_commands() -> list[str]:
    """Command lines of the pages: code-block lines and inline code, from the program name on."""
    found = []
    for page in PAGES:
        section = (DOCS / page).read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)
        candidates = [line for block in blocks for line in block.splitlines()]
        candidates += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", section, flags=re.S))
        for candidate in candidates:
            line = WRAPPER.sub("", re.split(r"  #| [>|] ", candidate)[0].strip())  # no comment, redirection, pipe
            words = line.split()
            if len(words) > 1 and words[0] in PROGRAMS:
                found.append(line)
    return found


def _click_parse(command: click.Command, name: str, args: list[str]) -> None:
    while isinstance(command, click.Group):
        name, command, args = command.resolve_command(click.Context(command, info_name=name), args)
    try:
        command.make_context(name, args)
    except click.BadParameter as error:  # placeholder paths ("...") need not exist here
        if "does not exist" not in str(error):
            raise


def parse(line: str) -> None:
    args = [a if a != "..." else "placeholder" for a in shlex.split(line)]
    program, args = args[0], args[1:]
    if program == "payment-platform":
        from payment_platform.cli import build_parser

        build_parser().parse_args(args)
    elif program == "dagster":
        from payment_platform_tests.dagster_internals import dagster_cli

        _click_parse(dagster_cli, "dagster", args)
    elif program == "dagster-daemon":
        from payment_platform_tests.dagster_internals import dagster_daemon_cli

        _click_parse(dagster_daemon_cli, "dagster-daemon", args)
    else:
        from dagster_webserver.cli import cli

        _click_parse(cli, "dagster-webserver", args)


COMMANDS = doc_commands()


def test_deployment_pages_name_commands():
    programs = {line.split()[0] for line in COMMANDS}
    assert {"payment-platform", "dagster"} <= programs, COMMANDS


@pytest.mark.parametrize("line", COMMANDS)
def test_doc_command_parses(line):
    try:
        parse(line)
    except SystemExit as exit_:  # argparse: an unknown command or option
        pytest.fail(f"`{line}` does not parse (exit {exit_.code})")
    except click.ClickException as error:
        pytest.fail(f"`{line}`: {error.format_message()}")
