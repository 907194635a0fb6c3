"""The trauma console's typed keys (`web.AppKey`): the only way its handlers reach the imports,
the identity checks and the agent's setup problems."""

from __future__ import annotations

import asyncio

from aiohttp import web

from receiving_site.console.imports import Imports
from receiving_site.console.record_checks import RecordChecks
from receiving_site.console.worklist_search import Search, Worklist

IMPORTS = web.AppKey("trauma_imports", Imports)
# What each person checked on an import's identity step, by transfer id and session: the local
# record they typed (or picked) and what the PACS holds for it, until the import is confirmed.
CHECKS = web.AppKey("trauma_identity_checks", RecordChecks)
# Why this agent cannot redeem (no relay credential, no PACS); empty when it can.
UNREADY: web.AppKey[list[str]] = web.AppKey("trauma_unready")
THUMBNAILS = web.AppKey("trauma_thumbnails", asyncio.Semaphore)  # renderings at once
# Held while an import's confirmation is checked, recorded and given: one at a time.
CONFIRMING = web.AppKey("trauma_confirming", asyncio.Lock)
# The Modality Worklist staff pick the local patient from, and each import's last search of it,
# by transfer id, until the import is confirmed.
WORKLIST = web.AppKey("trauma_worklist", Worklist)
SEARCHES: web.AppKey[dict[str, Search]] = web.AppKey("trauma_worklist_searches")
