"""`weir --help` and every subcommand's: each command and each option is described."""

from __future__ import annotations

import argparse

from extproc.cli import build_parser
from extproc.scanner.cli import build_parser as build_scan_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "weir"):  # type: ignore[no-untyped-def]
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {a.dest: a.help for a in action._choices_actions}
            for sub, child in action.choices.items():
                assert described.get(sub), f"`{name} {sub}` has no description"
                yield from _parsers(child, f"{name} {sub}")


def test_every_command_and_option_has_a_description() -> None:
    seen = []
    for name, parser in [*_parsers(build_parser()), ("weir scan", build_scan_parser())]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            seen.append((name, action.dest))
    # The walk did reach the nested commands.
    assert ("weir policy explain", "identity") in seen and ("weir scan", "baseline") in seen
    assert ("weir sandbox", "keep") in seen and ("weir serve", "grpc_listen") in seen
