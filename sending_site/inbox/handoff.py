"""Hand a spooled study to the one push pipeline: `push` takes paths, the inbox gives them.

    paths = await spooled_study(settings.spool, study_instance_uid)
    await push(PushRequest(paths=paths, ...), on_event)

Spool files are never rewritten (a resent image gets a new file), so what `push` reads and
journals stays what it read; the index may be open in a running agent meanwhile (WAL).
"""

from __future__ import annotations

from pathlib import Path

from sending_site.inbox import errors
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.spool import Spool


async def spooled_study(spool_root: Path, study_instance_uid: str) -> list[Path]:
    """The spool files of a study, by series and instance number. Raises `StudyNotSpooled`
    if the spool holds no image of it."""
    spool = Spool(spool_root)
    index = await InboxIndex.open(spool.index, read_only=True)
    try:
        ids = await index.study_files(study_instance_uid)
    finally:
        await index.close()
    if not ids:
        raise errors.StudyNotSpooled()
    return [spool.path_of(instance_id) for instance_id in ids]
