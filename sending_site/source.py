"""A study that is still arriving, as a push follows it (cut-through from the inbox).

`push` uploads what has arrived, asks its `StudySource` for more, uploads that too, and closes
the sealed manifest only once the source says the study is complete. The trauma center can
redeem meanwhile: it follows the manifest until it is closed, so it never takes part of a study
for the whole of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sending_site.collect import Instance


@dataclass(frozen=True)
class Arrivals:
    """What a source says when asked: instance files that arrived since it was last asked (on
    the first call, every one so far), and whether the study is complete, no more images
    to come after these."""

    paths: tuple[Path, ...]
    complete: bool
    # Staff stopped following before the study was complete: these paths are the last sent,
    # and the manifest is closed marked incomplete, so the trauma center sees it is not whole.
    stopped: bool = False
    # What the source's own checks already found in some of these files (the inbox parsed
    # each as it kept it): the push takes these instead of parsing the files again.
    described: tuple[Instance, ...] = ()
    # Not complete yet, but settled: with these paths the source has named every image of a
    # study that is as it will be called complete (none arrived for the stable age, the PACS
    # holds no more). Staff are not told images are still arriving; `complete` still comes
    # with a later answer that names nothing, and an image arriving meanwhile is named then.
    settled: bool = False


class StudySource(Protocol):
    """A growing study. `arrivals` may wait a little (a few seconds at most) when nothing new
    has come, then answers with no paths; a push keeps asking until `complete` (or
    `stopped`). Files it names must not change once named: the spool never rewrites one,
    and an image sent to the inbox again with the same data set leaves the first file as it
    was.
    A changed copy does replace it, and a push that has not sent the first file yet then
    fails (`FileChanged`): that image changed while it was being sent."""

    async def arrivals(self) -> Arrivals: ...
