"""Moments as staff read them, to the minute: in this machine's local time with its zone
(`local_time`), or in UTC (`utc_time`); and lengths of time (`how_long`)."""

from __future__ import annotations

import datetime


def local_time(epoch: float) -> str:
    """`epoch` (seconds since the epoch) in the machine's local time with its zone's name, e.g.
    ``2027-01-15 08:00 CET``. Zones without an abbreviation show their offset instead of the
    bare ``+03`` the system gives: ``2027-01-15 08:00 UTC+03:00``."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).astimezone()
    zone = moment.strftime("%Z")
    if not zone.isalpha():
        offset = moment.strftime("%z")  # +0300
        zone = f"UTC{offset[:3]}:{offset[3:5]}"
    return f"{moment:%Y-%m-%d %H:%M} {zone}"


def utc_time(epoch: float) -> str:
    """`epoch` (seconds since the epoch) in UTC, whatever this machine's zone, e.g.
    ``2027-01-15 07:00 UTC`` (the trauma console's holds and import pages say moments so)."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def how_long(seconds: float) -> str:
    """`seconds` as staff would write it, to the second: "less than a second", "1 second",
    "45 seconds", "90 seconds" (under two minutes), "1 minute", "5 minutes", "2 minutes 5
    seconds"."""
    whole = round(seconds)
    if whole < 1:
        return "less than a second"
    if whole < 120 and whole != 60:
        return _counted(whole, "second")
    minutes, rest = divmod(whole, 60)
    return _counted(minutes, "minute") + (f" {_counted(rest, 'second')}" if rest else "")


def _counted(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"
