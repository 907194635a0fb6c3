"""What `redeem` asks at the terminal: the code, and the yes/no before anything is stored.

The code is echoed as it is typed (it is read off a sheet or over the phone, so seeing it
helps, and it is spent once used), and a typo (a wrong check symbol, a missing or foreign
character) is explained and asked again: it never reaches the relay, so it costs no attempt.
Ctrl-D at the prompt ends with one line (`NoCodeEntered`).

The confirmation is read without blocking the event loop (`loop.add_reader` on the terminal),
so the download goes on while staff read the preview, and a failure elsewhere can withdraw
the question.
"""

from __future__ import annotations

import asyncio
import os
from typing import TextIO

from receiving_site import errors
from receiving_site.redeem import parse_secret
from transfer_codes.errors import TransferCodeError

CODE_PROMPT = "Code from the transfer sheet (or scan the QR): "
CODE_TRIES = 3  # typos explained and asked again before giving up


def read_code(stdin: TextIO, out: TextIO, tries: int = CODE_TRIES) -> str:
    """The code or QR text. From a pipe: its first line, unchecked (the caller reports what is
    wrong). At a terminal: prompted on `out` and asked again after a typo, `tries` times in
    all; the last typo's error is raised. Raises `NoCodeEntered` on Ctrl-D."""
    if not stdin.isatty():
        return stdin.readline()
    for attempt in range(1, tries + 1):
        out.write(CODE_PROMPT)
        out.flush()
        line = stdin.readline()
        if not line:  # Ctrl-D: end of input at the prompt
            out.write("\n")
            raise errors.NoCodeEntered()
        try:
            parse_secret(line)
        except (TransferCodeError, errors.NoSecretGiven) as e:
            if attempt == tries:
                raise
            out.write(f"  {e}\n")
            continue
        return line
    raise AssertionError("unreachable")  # the loop returns or raises


async def ask_yes_no(question: str, stdin: TextIO, out: TextIO) -> bool:
    """Write `question` on `out` and wait for a line on `stdin` (a terminal). True only for
    "y" or "yes" (any case); Ctrl-D or anything else is no."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()
    fd = stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 1024)
        except OSError:
            data = b""
        if not answered.done():
            answered.set_result(data)

    out.write(question)
    out.flush()
    loop.add_reader(fd, readable)
    try:
        line = await answered
    except asyncio.CancelledError:  # withdrawn: something failed meanwhile, and says so next
        out.write("\n")
        raise
    finally:
        loop.remove_reader(fd)
    if not line:
        out.write("\n")
    return line.decode(errors="replace").strip().lower() in ("y", "yes")
