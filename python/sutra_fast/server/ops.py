"""Process-level care for ``sutra-fast serve``: file limits, log floods, signals."""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
import time
from typing import Callable, Optional

from aiohttp import web

from sutra_fast.server import keys as K

ACCEPT_ERROR = "socket.accept() out of system resource"
# Errors that mean "this address/port cannot be listened on"; anything else
# raised by run_app is not the user's --host/--port choice.
BIND_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EPERM,
               errno.EAFNOSUPPORT}


def raise_nofile_limit() -> Optional[int]:
    """Raise the soft open-file limit to the hard one; return the limit in force
    (None where unknown). Every connection is a file descriptor: at the limit
    accept() fails and new clients hang."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # not allowed (e.g. macOS caps it): keep the old one
            pass
    return None if soft == resource.RLIM_INFINITY else soft


class AcceptErrorFilter(logging.Filter):
    """At most one "socket.accept() out of system resource" record per ``window``
    seconds. asyncio logs one, with a traceback, per failed accept: at the
    open-file limit that is thousands a second."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window, self.clock = window, clock
        self.last: Optional[float] = None
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(ACCEPT_ERROR):
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.window:
            self.suppressed += 1
            return False
        if self.last is not None:  # a repeat: its traceback is the same as the first's
            record.msg = (f"{ACCEPT_ERROR} ({self.suppressed} more suppressed in "
                          f"{now - self.last:.0f} s)")
            record.args, record.exc_info, record.exc_text = None, None, None
        else:
            record.msg = (f"{record.getMessage()}\n(raise the open-file limit: ulimit -n, "
                          f"LimitNOFILE= for systemd; repeats are logged once per "
                          f"{self.window:g} s)")
            record.args = None
        self.last, self.suppressed = now, 0
        return True


def banner(msg: str) -> None:
    """run_app's "Running on ..." line; a full or closed stderr must not stop the server."""
    try:
        print(f"sutra-fast serve: {msg.strip()}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # ENOSPC/EPIPE, closed file, no stderr
        pass


def is_bind_error(e: OSError) -> bool:
    return isinstance(e, socket.gaierror) or e.errno in BIND_ERRNOS


def _graceful_exit(drain) -> None:
    drain.begin()  # Connection: close from now on; idle keep-alive connections closed
    raise web.GracefulExit()


def shut_down(app: web.Application) -> None:
    """Begin the same graceful shutdown as SIGTERM (from a coroutine of the app)."""
    asyncio.get_running_loop().call_soon(_graceful_exit, app[K.DRAIN])


async def handle_signals(app: web.Application) -> None:
    """on_startup: SIGTERM, SIGINT and SIGHUP start a graceful shutdown.

    run_app handles SIGTERM/SIGINT itself but the Drain only hears of it once
    the listener is closed, a few loop turns later; responses sent in between
    were still keep-alive and their clients' next request met a closing
    connection. Replacing its handlers marks the Drain at the signal itself.
    SIGHUP (a closed terminal, a session ending) would otherwise kill at once.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        try:
            loop.add_signal_handler(sig, _graceful_exit, app[K.DRAIN])
        except (NotImplementedError, AttributeError, TypeError):  # Windows: none of this
            pass
