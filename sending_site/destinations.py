"""Which trauma center `--to` means: the relay's list of receiving sites, matched by name or
display name in any letter case where that is unambiguous; a name that matches none is refused
before anything is uploaded, with the closest one suggested. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sending_site import errors
from site_agent.terminal_text import shown

MOST_LISTED = 20  # in a refusal; `trauma-relay destinations` lists them all


@dataclass(frozen=True)
class Destination:
    """A receiving site as the relay's directory lists it."""

    name: str
    display_name: str = ""

    def label(self) -> str:
        """ "county-trauma (County Trauma Center)", or the name alone; for a terminal (the relay
        sends both, so any control character in them is shown escaped)."""
        display = self.display_name.strip()
        named = f"{self.name} ({display})" if display and display != self.name else self.name
        return shown(named)


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def _listing(sites: Sequence[Destination]) -> str:
    shown = ", ".join(s.label() for s in sites[:MOST_LISTED])
    more = len(sites) - MOST_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def closest(given: str, sites: Sequence[Destination]) -> Destination | None:
    """The site whose name or display name is nearest `given` (difflib), if any is near."""
    by_text: dict[str, Destination] = {}
    for site in sites:
        for text in (site.name, site.display_name):
            if text.strip():
                by_text.setdefault(_folded(text), site)
    near = difflib.get_close_matches(_folded(given), list(by_text), n=1, cutoff=0.6)
    return by_text[near[0]] if near else None


def disabled_words(disabled: Sequence[Destination]) -> str:
    """Of trauma centers the relay's operator has disabled (at least one): what they are, and
    who can enable them."""
    one = len(disabled) == 1
    it = "it" if one else "them"
    name = shown(disabled[0].name) if one else "NAME"
    return (
        f"{_listing(disabled)} {'is' if one else 'are'} on this relay, but the relay's operator "
        f"has disabled {it}, so nothing can be sent there. Only the relay's operator can enable "
        f"{it} again (trauma-relay site enable {name}, run on the relay): ask them."
    )


def _named(given: str, sites: Sequence[Destination]) -> list[Destination]:
    """The sites of the first step that `given` names: its name exactly, else a display name
    exactly, else either in any letter case (spaces folded)."""
    steps: tuple[Callable[[Destination], bool], ...] = (
        lambda s: s.name == given,
        lambda s: s.display_name.strip() == given.strip(),
        lambda s: _folded(s.name) == _folded(given) or _folded(s.display_name) == _folded(given),
    )
    for matches in steps:
        found = [s for s in sites if matches(s)]
        if found:
            return found
    return []


def resolve(
    given: str, sites: Sequence[Destination], disabled: Sequence[Destination] = ()
) -> Destination:
    """The one site `given` names: its name exactly, else its display name exactly, else either
    in any letter case (spaces folded). Raises `AmbiguousDestination` when a step matches more
    than one site, `DisabledDestination` when it names none of `sites` but one of `disabled`
    (those the relay's operator disabled), `UnknownDestination` (with the nearest name and the
    list) when it names none."""
    found = _named(given, sites)
    if len(found) == 1:
        return found[0]
    if found:
        raise errors.AmbiguousDestination(
            f'"{given}" could mean {_listing(found)}. Give the name of the one you mean '
            "with --to. Nothing was sent."
        )
    off = _named(given, disabled)
    if off:
        others = f" The trauma centers open to transfers are: {_listing(sites)}." if sites else ""
        raise errors.DisabledDestination(f"{disabled_words(off[:1])} Nothing was sent.{others}")
    if not sites:
        raise errors.UnknownDestination(
            f'"{given}" is not a trauma center on this relay, which has none yet: ask the '
            "relay's operator to add it. Nothing was sent."
        )
    near = closest(given, sites)
    hint = f" Did you mean {near.label()}?" if near else ""
    raise errors.UnknownDestination(
        f'"{given}" is not a trauma center on this relay.{hint} Nothing was sent. The trauma '
        f"centers are: {_listing(sites)} (trauma-relay destinations lists them)."
    )
