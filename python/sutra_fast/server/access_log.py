"""``--access-log``: one info line per request, through aiohttp's access-logger hook.

aiohttp calls the logger once the response is written (streams included), with
the time the request took. The line has only what is listed here: never a
header (the API key travels in one), the query string, nor a body.
"""
from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger

from sutra_fast.server import keys as K

LOGGER = "sutra_fast.access"


class AccessLogger(AbstractAccessLogger):
    """``127.0.0.1 POST /v1/embeddings 200 1234 B 5.2 ms request 6f1c...``"""

    def log(self, request, response, time: float) -> None:
        # The path as sent, still percent-encoded: a decoded %0A would forge a log
        # line. No query string: clients put keys there too.
        self.logger.info("%s %s %s %d %d B %.1f ms request %s", request.remote or "-",
                         request.method, request.rel_url.raw_path, response.status,
                         response.body_length, time * 1e3, request.get(K.REQUEST_ID, "-"))


def options(config) -> dict:
    """The access-log arguments for ``web.run_app`` / ``AppRunner`` / ``TestServer``."""
    if not config.access_log:
        return {"access_log": None}
    logger = logging.getLogger(LOGGER)
    # asked for explicitly, so shown even with --log-level warning
    logger.setLevel(logging.INFO)
    return {"access_log_class": AccessLogger, "access_log": logger}
