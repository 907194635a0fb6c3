"""How an agent declares its settings: frozen dataclasses, one per `[section]`, whose fields are
made with `setting(default, "help")`, collected in a root dataclass whose fields are made with
`section(Class, "help")`. `describe(Root)` reads the declaration back as `Section`s and
`Setting`s, each knowing its kind (from its annotation), default, help and name.

    @dataclass(frozen=True)
    class ConsoleSettings:
        listen: HostPort = setting(HostPort("127.0.0.1", 8760), "Where the console serves.")
        idle_timeout: Duration = setting(30 * MINUTES, "Sign out after this long idle.")

A section may add cross-field checks with a `problems(self)` method yielding `(key, sentence)`;
the root may too, yielding `("section.key", sentence)`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from site_agent.settings.kinds import PLAIN, Kind, Maybe

T = TypeVar("T")

HELP = "trauma_relay.help"
REQUIRED = "trauma_relay.required"


def setting(default: T, help: str, *, required: bool = False) -> T:
    """A setting's field: its default (with units: `30 * MINUTES`), the sentence printed above
    it in `--print-config`, and whether an empty value stops the start."""
    return dataclasses.field(default=default, metadata={HELP: help, REQUIRED: required})


def section(cls: type[T], help: str, default: T | None = None) -> T:
    """A root field holding one `[section]`; `default` overrides the section's own defaults
    (for example another listening port for another agent)."""
    factory: Callable[[], T] = cls if default is None else (lambda: default)
    return dataclasses.field(default_factory=factory, metadata={HELP: help})


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    kind: Kind[Any]
    default: Any
    help: str
    required: bool

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def env_name(self, prefix: str) -> str:
        return f"{prefix}_{self.section}_{self.key}".upper()


@dataclass(frozen=True)
class Section:
    name: str
    cls: type
    help: str
    default: Any
    settings: tuple[Setting, ...]


def kind_of(hint: Any) -> Kind[Any]:
    """The kind for a field's resolved annotation; TypeError for one we cannot read or write."""
    if typing.get_origin(hint) is typing.Annotated:
        for extra in hint.__metadata__:
            if isinstance(extra, Kind):
                return extra
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(inner) == 1 and len(typing.get_args(hint)) == 2:
            return Maybe(kind_of(inner[0]))
    if hint in PLAIN:
        return PLAIN[hint]
    raise TypeError(f"no settings kind for {hint!r}")


def describe(root: type) -> tuple[Section, ...]:
    """The sections of a root settings class, in declaration order."""
    hints = typing.get_type_hints(root)
    found = []
    for outer in dataclasses.fields(root):
        cls = hints[outer.name]
        if not callable(outer.default_factory):
            raise TypeError(f"{root.__name__}.{outer.name} is not made with section()")
        default = outer.default_factory()
        inner_hints = typing.get_type_hints(cls, include_extras=True)
        settings = tuple(
            Setting(
                section=outer.name,
                key=f.name,
                kind=kind_of(inner_hints[f.name]),
                default=getattr(default, f.name),
                help=f.metadata.get(HELP, ""),
                required=bool(f.metadata.get(REQUIRED, False)),
            )
            for f in dataclasses.fields(cls)
        )
        found.append(Section(outer.name, cls, outer.metadata.get(HELP, ""), default, settings))
    return tuple(found)


def every_setting(root: type) -> Iterator[Setting]:
    for part in describe(root):
        yield from part.settings
