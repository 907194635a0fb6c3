"""A WAN link made in user space: a TCP proxy that delays each byte by a one-way delay and paces
each direction to a rate, for this machine's kernel, which has no `sch_netem` (nor `fq`) and so no
qdisc that can delay a packet.

A `Shaper` runs an asyncio loop in a thread of its own. Each `Link` it makes has two directions
(towards the target and back), each a `Lane`: a token bucket paces the bytes that enter it (as a
link serializes them at its rate) and every chunk is delivered `delay` seconds after it leaves
the bucket, so a request and its answer cost a round trip of twice the delay, and a stream
runs at the rate once the pipe is full, as over a real link. The connections of one link share
its lanes (they share the link's bandwidth). What a lane holds in flight is bounded
(`IN_FLIGHT`): beyond it the proxy stops reading and TCP pushes back on the sender.

`python ops/bench/shaping.py` measures a link it makes: throughput of a bulk transfer and the
round trip of a ping-pong."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

CHUNK = 16 * 1024  # bytes read at once: 1.3 ms at 100 Mbit/s
IN_FLIGHT = 1024 * 1024  # bytes a lane of one connection holds before it stops reading
T = TypeVar("T")


@dataclass
class TokenBucket:
    """Paces bytes to `rate` (bytes/s), letting `burst` bytes through at once. Pure: the caller
    gives the time."""

    rate: float
    burst: float = CHUNK
    _clock: float = field(default=float("-inf"), repr=False)  # when the bucket would be full

    def departure(self, now: float, size: int) -> float:
        """When `size` bytes offered at `now` have left the bucket (taking their tokens)."""
        self._clock = max(self._clock, now - self.burst / self.rate) + size / self.rate
        return max(now, self._clock)


@dataclass
class Lane:
    """One direction of a link: paced by its bucket, then `delay` seconds on the wire."""

    bucket: TokenBucket
    delay: float

    def delivery(self, now: float, size: int) -> float:
        """When `size` bytes offered at `now` reach the far end."""
        return self.bucket.departure(now, size) + self.delay


@dataclass
class Link:
    """A link of `rate` bits/s each way and `rtt` seconds of round trip (half each way)."""

    name: str
    rate_bits: float
    rtt: float
    out: Lane = field(init=False)  # towards the target
    back: Lane = field(init=False)

    def __post_init__(self) -> None:
        self.out = Lane(TokenBucket(self.rate_bits / 8), self.rtt / 2)
        self.back = Lane(TokenBucket(self.rate_bits / 8), self.rtt / 2)

    def describe(self) -> str:
        return f"{self.rate_bits / 1e6:g} Mbit/s each way, {self.rtt * 1e3:g} ms RTT"


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lane: Lane, in_flight: int
) -> None:
    """Carry one direction of a connection through `lane` until EOF, then half-close."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    async def deliver() -> None:
        nonlocal held
        try:
            while (item := await queue.get()) is not None:
                at, data = item
                await asyncio.sleep(max(0.0, at - loop.time()))
                writer.write(data)
                await writer.drain()
                held -= len(data)
                if held <= in_flight:
                    room.set()
            if writer.can_write_eof():
                writer.write_eof()
        finally:
            room.set()  # never leave the reading side waiting for room that will not come

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((lane.delivery(loop.time(), len(data)), data))
            held += len(data)
            if held > in_flight:
                room.clear()
                await room.wait()
                if delivering.done():
                    break
        queue.put_nowait(None)
        await delivering  # (raises what stopped the delivery, if it stopped early)
    finally:
        delivering.cancel()


class Shaper:
    """Shaped links, served by an asyncio loop in a thread; a context manager."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    def __enter__(self) -> Shaper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def forward(self, link: Link, port: int, host: str = "127.0.0.1") -> int:
        """Listen on a free port of `host`; carry each connection to `host:port` through `link`.
        The port listened on."""
        return self.run(self._forward(link, host, port))

    async def _forward(self, link: Link, host: str, port: int) -> int:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._carry(link, reader, writer, host, port)
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(connected, host, 0)
        self._servers.append(server)
        listening: int = server.sockets[0].getsockname()[1]
        return listening

    @staticmethod
    async def _carry(
        link: Link,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        host: str,
        port: int,
    ) -> None:
        target_writer = None
        try:
            target_reader, target_writer = await asyncio.open_connection(host, port)
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(_pump(client_reader, target_writer, link.out, IN_FLIGHT))
                pumps.create_task(_pump(target_reader, client_writer, link.back, IN_FLIGHT))
        except* OSError:  # (ConnectionError too) either end went away: close both, as a
            pass  # broken link would
        finally:
            for writer in (client_writer, target_writer):
                if writer is not None:
                    writer.close()

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def shut() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(shut(), 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


@dataclass
class LinkCheck:
    megabytes_per_s: float  # a bulk transfer through the link (1 MB = 10^6 bytes)
    rtt_ms: float  # median of a ping-pong of one byte


async def _check(shaper: Shaper, link: Link, megabytes: float, pings: int) -> LinkCheck:
    size = int(megabytes * 1e6)

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < size and (data := await reader.read(1 << 16)):
            got += len(data)
        writer.write(b"k")
        await writer.drain()
        writer.close()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1):
            writer.write(data)
            await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (echo, sink)]
    echo_port, sink_port = (s.sockets[0].getsockname()[1] for s in servers)
    try:
        via = await shaper._forward(link, "127.0.0.1", echo_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", via)
        rtts = []
        for _ in range(pings):
            start = time.perf_counter()
            writer.write(b"p")
            await reader.readexactly(1)
            rtts.append(time.perf_counter() - start)
        writer.close()
        via = await shaper._forward(link, "127.0.0.1", sink_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", via)
        start = time.perf_counter()
        block = bytes(1 << 16)
        for sent in range(0, size, len(block)):
            writer.write(block[: size - sent])
            await writer.drain()
        await reader.readexactly(1)
        elapsed = time.perf_counter() - start
        writer.close()
    finally:
        for server in servers:
            server.close()
    return LinkCheck(size / elapsed / 1e6, statistics.median(rtts) * 1e3)


def check(shaper: Shaper, link: Link, megabytes: float = 8.0, pings: int = 20) -> LinkCheck:
    """Measure a link like `link` (a copy, so its own buckets stay as they are): the throughput
    of a bulk transfer of `megabytes` and the median round trip of `pings` one-byte
    ping-pongs."""
    copy = Link(link.name, link.rate_bits, link.rtt)
    return shaper.run(_check(shaper, copy, megabytes, pings))


def main() -> None:
    with Shaper() as shaper:
        link = Link("check", 100e6, 0.020)
        measured = check(shaper, link)
        print(
            f"{link.describe()}: bulk {measured.megabytes_per_s:.2f} MB/s "
            f"(expected {link.rate_bits / 8e6:.2f}), ping-pong RTT {measured.rtt_ms:.1f} ms"
        )


if __name__ == "__main__":
    main()
