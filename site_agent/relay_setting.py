"""Where the site agents find their relay when `--relay` is not given: TRAUMA_RELAY_URL, else
`relay = "https://..."` in a small TOML file, `config.toml` in the site's state folder (or the
file `--config` names). `--relay` always wins. Both agents (`push`, `reissue`, `redeem`, ...)
read it through `add_relay_arguments` and `relay_url`.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from site_agent import errors
from site_agent.local_state import default_state_dir

RELAY_ENV = "TRAUMA_RELAY_URL"
CONFIG_NAME = "config.toml"


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    """`--relay URL` and `--config FILE`, as every site subcommand takes them."""
    parser.add_argument(
        "--relay",
        help=f"relay URL, e.g. https://relay.example (default: {RELAY_ENV}, or relay = ... in "
        f"the state folder's {CONFIG_NAME})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"settings file (TOML; default: {CONFIG_NAME} in the state folder)",
    )


def relay_from_arguments(args: argparse.Namespace) -> str:
    """The relay for a subcommand given `add_relay_arguments` and `--state`."""
    state: Path | None = getattr(args, "state", None)
    return relay_url(args.relay, state or default_state_dir(), args.config)


def relay_url(
    given: str | None,
    state_dir: Path,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """`given` (`--relay`), else TRAUMA_RELAY_URL, else the `relay` key of `config_file` (or of
    `config.toml` in `state_dir`, which may be missing). Raises `RelayNotSet` when none gives
    one, `SettingsUnreadable` when the file cannot be read or its `relay` is not a string."""
    if given and given.strip():
        return given.strip()
    env = (os.environ if environ is None else environ).get(RELAY_ENV, "").strip()
    if env:
        return env
    path = config_file or state_dir / CONFIG_NAME
    relay = _read(path, required=config_file is not None).get("relay", "")
    if not isinstance(relay, str):
        raise errors.SettingsUnreadable(
            f'In {path}, relay must be text in quotes, e.g. relay = "https://relay.example".'
        )
    if relay.strip():
        return relay.strip()
    raise errors.RelayNotSet(
        f"No relay address was given. Give --relay URL, set {RELAY_ENV}, or write "
        f'relay = "https://relay.example" into {path}.'
    )


def _read(path: Path, *, required: bool) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        if not required:
            return {}
        raise errors.SettingsUnreadable(f"The settings file {path} does not exist.") from e
    except OSError as e:
        raise errors.SettingsUnreadable(
            f"The settings file {path} could not be read ({e.strerror or e}). Check its path "
            "and permissions."
        ) from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise errors.SettingsUnreadable(
            f"The settings file {path} is not valid TOML ({e}). Fix it, or give --relay."
        ) from e
