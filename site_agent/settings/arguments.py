"""The settings options of an agent's commands: `--config FILE`, `--set SECTION.KEY=VALUE`
(repeatable) and `--print-config`, accepted both after the agent's group (`trauma-relay
sender --config F console`) and after its command (`trauma-relay sender console --config F`).

Light on purpose: building the command line imports nothing beyond argparse."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from site_agent.errors import SettingInvalid

_LEAF = "leaf_"


def add_arguments(parser: argparse.ArgumentParser, *, group: bool = False) -> None:
    """Add the settings options to `parser`: the agent's group parser (`group=True`) or one of
    its commands. A command's options do not overwrite the group's (argparse parses a
    command's options into a fresh namespace), so they are kept apart and merged by `read`."""
    prefix = "" if group else _LEAF

    def default(value: object) -> object:
        return value if group else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        dest=f"{prefix}config",
        type=Path,
        metavar="FILE",
        default=default(None),
        help="TOML configuration file (see --print-config)",
    )
    parser.add_argument(
        "--set",
        dest=f"{prefix}set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=default([]),
        help="override one setting (repeatable), e.g. --set console.listen=127.0.0.1:8760",
    )
    parser.add_argument(
        "--print-config",
        dest=f"{prefix}print_config",
        action="store_true",
        default=default(False),
        help="print the complete configuration, commented, with every default, and stop",
    )


@dataclass(frozen=True)
class SettingsOptions:
    config: Path | None
    assignments: tuple[str, ...]
    print_config: bool


def read(args: argparse.Namespace) -> SettingsOptions:
    """The settings options given at either level; `SettingInvalid` for two different files."""
    group_file: Path | None = getattr(args, "config", None)
    leaf_file: Path | None = getattr(args, f"{_LEAF}config", None)
    if group_file and leaf_file and group_file != leaf_file:
        raise SettingInvalid(f"--config: given twice ({group_file} and {leaf_file}); give one.")
    return SettingsOptions(
        config=leaf_file or group_file,
        assignments=(*getattr(args, "set", []), *getattr(args, f"{_LEAF}set", [])),
        print_config=bool(
            getattr(args, "print_config", False) or getattr(args, f"{_LEAF}print_config", False)
        ),
    )
