"""Run the app until SIGTERM/SIGINT/SIGHUP: stop accepting, finish in-flight work, exit 0."""
from __future__ import annotations

import logging
import sys

from aiohttp import web

from sutra_fast.server import access_log, ops
from sutra_fast.server import keys as K
from sutra_fast.server.app import create_app
from sutra_fast.server.config import ServerConfig
from sutra_fast.server.shutdown import GRACE

log = logging.getLogger("sutra_fast.server")


def serve(config: ServerConfig) -> int:
    config.check()  # before anything loads
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.threads is not None:
        import sutra_fast as sf

        sf.set_num_threads(config.threads)
    limit = ops.raise_nofile_limit()
    log.info("open-file limit: %s (one per connection)", limit or "unknown")
    logging.getLogger("asyncio").addFilter(ops.AcceptErrorFilter())
    app = create_app(config)
    app.on_startup.append(ops.handle_signals)
    # SIGTERM/SIGINT/SIGHUP (ops.handle_signals) end run_app gracefully: every
    # later response says Connection: close, the listener closes, the app's
    # on_shutdown gives in-flight requests config.shutdown_timeout seconds
    # (shutdown.py), aiohttp then GRACE for what is left, then on_cleanup runs.
    try:
        web.run_app(app, host=config.host, port=config.port,
                    shutdown_timeout=GRACE, handler_cancellation=True,
                    print=ops.banner, **access_log.options(config))
    except OSError as e:
        if not ops.is_bind_error(e):  # only port in use, no permission, unknown host
            raise
        raise RuntimeError(f"cannot listen on {config.host}:{config.port}: "
                           f"{e.strerror or e}; choose another --port / --host") from None
    # --exit-on-load-error: a failed load shut the server down (app._load); say so
    # to systemd's Restart=on-failure and the like
    return 1 if config.exit_on_load_error and app[K.MODELS].failed else 0
