"""Moments as staff read them: this machine's local time with its zone, to the minute."""

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
