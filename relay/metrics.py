"""Prometheus metrics at `/metrics` (prometheus-client), for the relay's operators: transfers
by state, bytes in and out, failed redemptions, throttled and refused requests, sweeper runs,
storage used and free. Counts and sizes only: no transfer id, site credential or PHI is ever a
label. Served only to the addresses in `metrics_allowed` (by default this machine), and to
no one else, who gets a plain 404."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from relay import disk
from relay.addresses import networks, within
from relay.lifecycle import State

PATH = "/metrics"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    bytes_in: Counter
    bytes_out: Counter
    redemption_failures: Counter
    throttled: Counter
    refused_credentials: Counter
    sweeps: Counter
    purged: Counter
    manifest_waits: Counter
    transfers: Gauge
    stored_bytes: Gauge
    disk_free_bytes: Gauge

    @classmethod
    def new(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"trauma_relay_{name}", text, labels, registry=registry)

        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"trauma_relay_{name}", text, labels, registry=registry)

        metrics = cls(
            registry=registry,
            bytes_in=counter("upload_bytes", "Sealed bytes acknowledged from sending sites."),
            bytes_out=counter("download_bytes", "Sealed bytes sent to receiving sites."),
            redemption_failures=counter(
                "redemption_failures", "Redemptions refused for a wrong code or QR."
            ),
            throttled=counter(
                "throttled_requests", "Attempts refused by a guessing throttle.", ("kind",)
            ),
            refused_credentials=counter(
                "refused_credentials", "Requests refused for a missing or unknown credential."
            ),
            sweeps=counter("sweeper_runs", "Expiry and retention sweeps run."),
            purged=counter("transfers_purged", "Transfers whose sealed data was deleted."),
            manifest_waits=counter(
                "manifest_waits",
                "Manifest long polls that waited, by how the wait ended: woken by new records "
                "or objects (on this instance or another sharing the database), or ran out.",
                ("ended",),
            ),
            transfers=gauge("transfers", "Transfers on the relay, by state.", ("state",)),
            stored_bytes=gauge("stored_bytes", "Sealed bytes held for transfers not purged."),
            disk_free_bytes=gauge("disk_free_bytes", "Free bytes on the data folder's disk."),
        )
        # A labelled counter has no series until its first count, and an alert on its rate
        # ("rising") sees nothing then: the one kind known ahead is shown from 0.
        metrics.throttled.labels(kind="guessing")
        return metrics


METRICS = web.AppKey("metrics", Metrics)


async def serve(request: web.Request) -> web.Response:
    """The metrics, freshly counted; 404 for an address not in `metrics_allowed`."""
    from relay.api.auth import remote  # the client's address, behind a trusted proxy too
    from relay.appkeys import CONFIG, METADATA

    config = request.app[CONFIG]
    if not within(remote(request), networks(config.metrics_allowed)):
        raise web.HTTPNotFound()
    metrics = request.app[METRICS]
    async with request.app[METADATA].transaction() as tx:
        counts = await tx.transfer_counts()
        stored = await tx.stored_bytes()
    for state in State:
        metrics.transfers.labels(state=state.value).set(counts.get(state.value, 0))
    metrics.stored_bytes.set(stored)
    metrics.disk_free_bytes.set(await disk.free_bytes(config.data_dir))
    return web.Response(
        body=generate_latest(metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
