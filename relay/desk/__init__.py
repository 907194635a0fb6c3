"""The relay's desk: between the HTTP handlers (`relay.api`) and storage.

Each function here is one piece of business done once, inside one transaction (`visit.Desk`):
load the transfer, check that the caller may see it (refusing with `errors.NotFound` as if it did
not exist), ask the lifecycle (`relay.lifecycle.Transfer`), persist, and write the audit record.
Handlers only parse requests and answer. Nothing here imports aiohttp.
"""
