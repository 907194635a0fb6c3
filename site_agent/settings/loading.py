"""Build an agent's settings: defaults, then the TOML file, then the environment, then `--set`
(the later wins); then check them, so that an invalid setting stops the start with a sentence
naming it ("console.listen: expected HOST:PORT, got 'x' (from --set)").

Unknown sections, keys and `<PREFIX>_*` environment variables are refused too: a misspelt
setting silently left at its default is how a service ends up listening on the wrong port.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from site_agent.errors import ConfigUnreadable, SettingInvalid
from site_agent.settings.kinds import Invalid
from site_agent.settings.schema import Setting, describe

R = TypeVar("R")


def load(
    root: type[R],
    prefix: str,
    *,
    file: Path | None = None,
    assignments: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    check: bool = True,
) -> R:
    """The settings of `root` (a root settings class), from every layer. With `check` (the
    default) required settings and each section's `problems()` are checked as well; without
    it, what `--print-config` shows. Raises `SettingInvalid` or `ConfigUnreadable`."""
    parts = describe(root)
    by_name = {s.name: s for part in parts for s in part.settings}
    values: dict[str, Any] = {s.name: s.default for s in by_name.values()}
    if file is not None:
        for setting, raw in _from_file(file, by_name):
            values[setting.name] = _parsed(setting, raw, f"in {file}", toml=True)
    env = os.environ if environ is None else environ
    for setting, var in _from_environment(env, prefix, by_name):
        values[setting.name] = _parsed(setting, env[var], f"from {var}", toml=False)
    for text in assignments:
        setting, raw = _assignment(text, by_name)
        values[setting.name] = _parsed(setting, raw, "from --set", toml=False)
    built = root(
        **{part.name: part.cls(**{s.key: values[s.name] for s in part.settings}) for part in parts}
    )
    if check:
        checked(built)
    return built


def checked(settings: R) -> R:
    """`settings`, or `SettingInvalid` for the first empty required setting or problem."""
    for part in describe(type(settings)):
        value = getattr(settings, part.name)
        for s in part.settings:
            if s.required and getattr(value, s.key) in ("", None):
                raise SettingInvalid(
                    f"{s.name}: required, and not set. {s.help} Set it in the configuration "
                    f"file, or with --set {s.name}=..."
                )
        for key, sentence in _problems(value):
            raise SettingInvalid(f"{part.name}.{key}: {sentence}")
    for name, sentence in _problems(settings):
        raise SettingInvalid(f"{name}: {sentence}")
    return settings


def replaced(settings: R, name: str, value: Any) -> R:
    """A copy of `settings` with the setting `section.key` set to `value` (tests, callers)."""
    part, _, key = name.partition(".")
    inner = dataclasses.replace(getattr(settings, part), **{key: value})
    return dataclasses.replace(settings, **{part: inner})  # type: ignore[type-var]


def _problems(value: object) -> Iterable[tuple[str, str]]:
    method = getattr(value, "problems", None)
    return method() if callable(method) else ()


def _parsed(setting: Setting, raw: Any, where: str, *, toml: bool) -> Any:
    try:
        return setting.kind.from_toml(raw) if toml else setting.kind.from_text(raw)
    except Invalid as e:
        raise SettingInvalid(f"{setting.name}: {e} ({where})") from None


def _unknown(name: str, known: Iterable[str], where: str, what: str = "setting") -> SettingInvalid:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return SettingInvalid(f"{name}: no such {what} ({where}){hint}")


def _from_file(file: Path, by_name: Mapping[str, Setting]) -> list[tuple[Setting, object]]:
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigUnreadable(
            f"The configuration file {file} could not be read ({e.strerror}). Check its path "
            "and permissions."
        ) from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigUnreadable(f"The configuration file {file} is not valid TOML: {e}.") from e
    sections = {name.partition(".")[0] for name in by_name}
    found = []
    for section_name, body in table.items():
        if not isinstance(body, dict):
            if section_name in sections:
                raise SettingInvalid(
                    f"{section_name}: expected a [{section_name}] table (in {file})"
                )
            raise _unknown(section_name, sections, f"in {file}", "section")
        if section_name not in sections:
            raise _unknown(section_name, sections, f"in {file}", "section")
        for key, raw in body.items():
            name = f"{section_name}.{key}"
            if name not in by_name:
                raise _unknown(name, by_name, f"in {file}")
            found.append((by_name[name], raw))
    return found


def _from_environment(
    env: Mapping[str, str], prefix: str, by_name: Mapping[str, Setting]
) -> list[tuple[Setting, str]]:
    by_var = {s.env_name(prefix): s for s in by_name.values()}
    found = []
    for var in sorted(env):
        if not var.startswith(f"{prefix}_"):
            continue
        if var not in by_var:
            raise _unknown(var, by_var, f"an environment variable named like {prefix}_SECTION_KEY")
        found.append((by_var[var], var))
    return found


def _assignment(text: str, by_name: Mapping[str, Setting]) -> tuple[Setting, str]:
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise SettingInvalid(f"--set {text}: expected SECTION.KEY=VALUE")
    if name not in by_name:
        raise _unknown(name, by_name, "from --set")
    return by_name[name], raw
