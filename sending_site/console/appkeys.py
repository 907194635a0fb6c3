"""The ER console's typed keys: the agent's settings, its push jobs and its PACS fetches."""

from __future__ import annotations

from aiohttp import web

from sending_site.agent.jobs import PushJobs
from sending_site.console.fetches import Fetches
from sending_site.settings import SenderSettings

SETTINGS = web.AppKey("sender_settings", SenderSettings)
JOBS = web.AppKey("sender_push_jobs", PushJobs)
FETCHES = web.AppKey("sender_pacs_fetches", Fetches)
