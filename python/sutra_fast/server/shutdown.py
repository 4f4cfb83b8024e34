"""Graceful shutdown, bounded by ``--shutdown-timeout``.

aiohttp's own wait is per connection and doubles (it waits the timeout, cancels
the handler, then waits the timeout again), and cancelling a streaming handler
cuts its stream without an end. So the app waits itself, in ``on_shutdown``
(the listener is closed by then): in-flight requests get the timeout to finish;
at the deadline the generations still running are cancelled through the same
path as a client that leaves, so their streams end as usual (a final chunk and
``[DONE]``, or the final NDJSON line). aiohttp then gets :data:`GRACE` seconds
for what is left (writing those last bytes).

aiohttp closes every connection once its request is done, so each response
sent while draining says ``Connection: close`` (:func:`close_when_draining`): a
keep-alive client then opens a new connection (to another replica) instead of
sending its next request on one the server is closing (ServerDisconnectedError).
A keep-alive connection that is idle at the signal has no response to say it:
:meth:`Drain.begin` closes it there and then (the client sees the close before
it sends, and opens a new connection). Left to aiohttp, it would stop reading
it and close it only after the drain, failing a request sent on it meanwhile.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import hdrs

from sutra_fast.server import keys as K

log = logging.getLogger("sutra_fast.server")

GRACE = 1.0  # seconds aiohttp waits (twice) after the app's own wait; see run.py


class Drain:
    """Requests in flight and generations running, for a bounded shutdown."""

    def __init__(self):
        self.requests = 0
        self.generations: set = set()  # runner.Generation objects, added by the routes
        self._idle = asyncio.Event()
        self._idle.set()
        self._t0 = None
        self._cancelled = 0
        self.closing = False  # shutdown began: no connection is kept alive any more
        self._server = None  # aiohttp's web.Server (it lists the connections); see watch()
        self._idle_closed = 0

    @contextlib.contextmanager
    def request(self):
        self.requests += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.requests -= 1
            if not self.requests:
                self._idle.set()

    def watch(self, protocol) -> None:
        """Note the aiohttp Server behind a request's connection (request.protocol);
        run_app keeps it to itself, and begin() needs its list of connections."""
        if self._server is None:
            self._server = getattr(protocol, "_manager", None)

    def begin(self) -> None:
        """At the shutdown signal: no more keep-alive, and close the idle connections.

        A connection waiting for its next request is closed at once: its client
        sees the close before it sends (and opens a new connection) instead of
        sending a request that aiohttp no longer reads (it closes the connection
        only after the drain). Busy connections close after their response:
        it says Connection: close (close_when_draining), and aiohttp's runner
        closes the ones whose response had begun before the signal.
        """
        self.closing = True
        # on the next loop turn: the reads of this one (a request that came with the
        # signal) run first, so that request is answered, not reset with its connection
        asyncio.get_running_loop().call_soon(self._close_idle)

    def _close_idle(self) -> None:
        for conn in getattr(self._server, "connections", ()):
            # idle = a pending wait for the next request: the same test aiohttp's
            # keep-alive timeout makes before closing a connection (3.9 to 3.14)
            waiter = getattr(conn, "_waiter", None)
            if waiter is not None and not waiter.done():
                conn.force_close()
                self._idle_closed += 1

    async def shutdown(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for in-flight requests, then cancel generations."""
        self._t0 = time.monotonic()
        self.closing = True
        log.info("shutting down: %d request(s) in flight (%d generating); they get up to "
                 "%g s (--shutdown-timeout); %d idle connection(s) closed", self.requests,
                 len(self.generations), timeout, self._idle_closed)
        if not self.requests:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            running = list(self.generations)
            self._cancelled = len(running)
            for g in running:
                g.cancel()  # the stream ends before its next token; the route sends its end

    def done(self) -> None:
        if self._t0 is not None:
            log.info("shutdown complete in %.1f s (%d generation(s) cancelled at the deadline)",
                     time.monotonic() - self._t0, self._cancelled)


async def close_when_draining(request, response) -> None:
    """on_response_prepare: ``Connection: close`` on every response once shutdown began."""
    if request.app[K.DRAIN].closing:
        response.force_close()  # aiohttp closes the connection after this response
        # the headers are computed before this hook runs, so say it in them too
        response.headers[hdrs.CONNECTION] = "close"
