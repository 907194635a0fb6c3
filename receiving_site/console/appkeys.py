"""The trauma console's typed keys (`web.AppKey`): the only way its handlers reach the imports,
the identity checks and the agent's setup problems."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from receiving_site.console.identity_check import Candidate, LocalCheck
from receiving_site.console.imports import Imports
from transfer_codes.manifest import StudySummary

IMPORTS = web.AppKey("trauma_imports", Imports)
# What staff checked on the identity page, by transfer id: the local record they typed and what
# the PACS holds for it, until they confirm.
CHECKS: web.AppKey[dict[str, LocalCheck]] = web.AppKey("trauma_identity_checks")
# Why this agent cannot redeem (no relay credential, no PACS); empty when it can.
UNREADY: web.AppKey[list[str]] = web.AppKey("trauma_unready")
THUMBNAILS = web.AppKey("trauma_thumbnails", asyncio.Semaphore)  # renderings at once
# Optional: the local patients staff may pick on the identity page for a study (the Modality
# Worklist); without it, staff type the local record number.
CANDIDATES: web.AppKey[Callable[[web.Application, StudySummary], Awaitable[list[Candidate]]]] = (
    web.AppKey("trauma_candidates")
)
