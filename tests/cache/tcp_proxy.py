"""A TCP forwarder to a real server that tests can take down, hang and bring back: a server
that restarts, a network path that breaks or black-holes, without touching the shared
server itself.

- ``stop()`` closes the listening socket and every connection: new connections are
  refused, as by a server that is down.
- ``hang()`` keeps accepting connections but forwards nothing either way, and closes
  nothing: a client's bytes are held (as by a network path that drops packets while TCP
  keeps retrying), so a client waits until its own timeout.
- ``resume()`` forwards again, held bytes first; ``start()`` after ``stop()`` listens again
  on the same port.

``accepted`` counts connections accepted and ``client_reads`` the chunks read from
clients, so that a test can tell whether a client touched the network at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Proxy:
    """A TCP forwarder to a test server (``host:port``, or a Unix socket ``path``)."""

    def __init__(
        self, target_host: str = "", target_port: int = 0, *, unix_path: str | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.unix_path = unix_path
        self.port = free_port()
        self.accepted = 0
        self.client_reads = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def hung(self) -> bool:
        return not self._flowing.is_set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def fail(self, fault: str) -> None:
        """Break the path as ``fault`` says: "refused" (nothing listens) or "hung" (connections
        are accepted, nothing is forwarded)."""
        if fault == "refused":
            await self.stop()
        else:
            self.hang()

    async def restore(self, fault: str) -> None:
        """Undo :meth:`fail`."""
        if fault == "refused":
            await self.start()
        else:
            self.resume()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        return await asyncio.open_connection(*self.target)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        # the client's bytes are read (and counted) as they come, hung or not; they go on
        # to the server only while the path flows
        to_server: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def read_client() -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    self.client_reads += 1
                    to_server.put_nowait(data)
            to_server.put_nowait(None)

        reading = asyncio.create_task(read_client())
        await self._flowing.wait()  # a hung path accepts, then says nothing
        try:
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            writer.close()
            self._writers.discard(writer)
            reading.cancel()
            return
        self._writers.add(up_writer)

        async def to_upstream() -> None:
            with contextlib.suppress(OSError):
                while (data := await to_server.get()) is not None:
                    await self._flowing.wait()
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def to_client() -> None:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    await self._flowing.wait()
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(reading, to_upstream(), to_client())
        self._writers.difference_update((writer, up_writer))


async def redis_proxy(url: str) -> tuple[Proxy, str]:
    """A started proxy to the Redis server at ``url``, and the URL that goes through it."""
    target = urlsplit(url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    return proxy, f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"


async def postgres_proxy(url: str) -> tuple[Proxy, str]:
    """A started proxy to the PostgreSQL server at ``url`` (TCP or a Unix socket directory,
    as pgserver's), and the URL that goes through it over TCP."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(url)
    host = str(info.get("host") or "127.0.0.1")
    port = int(info.get("port") or 5432)
    if host.startswith("/"):
        proxy = Proxy(unix_path=f"{host}/.s.PGSQL.{port}")
    else:
        proxy = Proxy(host, port)
    await proxy.start()
    info.update(host="127.0.0.1", port=str(proxy.port))
    return proxy, make_conninfo(**info)


FAULTS = ["refused", "hung"]
"""The two ways a store's path fails in the fault tests (see :meth:`Proxy.fail`)."""
NO_HANG_S = 20.0
"""A generous bound on each phase of a fault test: without deadlines a hung store holds a
call for seconds."""
