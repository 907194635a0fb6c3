"""Before a code is issued: the completeness report of a received study, asking the PACS for
its series counts (I/O here; the decision is `completeness.assess`)."""

from __future__ import annotations

import asyncio
import logging

from sending_site.inbox import errors
from sending_site.inbox.completeness import CompletenessReport, assess
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.pacs import find_series
from sending_site.inbox.queries import PacsSeries
from sending_site.inbox.settings import InboxSettings

LOGGER = logging.getLogger(__name__)


async def completeness_of(
    settings: InboxSettings, index: InboxIndex, study_instance_uid: str, now: float
) -> CompletenessReport:
    """The study's completeness report (`now` in seconds since the epoch). A PACS that cannot
    be asked makes a report that says so, not an error. Raises `StudyNotSpooled`."""
    study = await index.study(study_instance_uid)
    if study is None:
        raise errors.StudyNotSpooled()
    pacs: list[PacsSeries] | None = None
    problem = ""
    if settings.pacs is None:
        problem = "no hospital PACS is set in the agent's settings"
    else:
        try:
            pacs = await asyncio.to_thread(find_series, settings, study_instance_uid)
        except (errors.PacsUnreachable, errors.PacsRefused) as e:
            LOGGER.warning("Could not ask the PACS for the study's series counts: %s", e)
            problem = e.message
    return assess(study, pacs, now=now, stable_after=settings.stable_after, pacs_problem=problem)
