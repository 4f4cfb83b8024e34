"""The app factory: wires config, models, batcher, limits, metrics and routes."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from aiohttp import web

from sutra_fast.server import keys as K
from sutra_fast.server import ops, routes_embed, routes_generate, routes_ops
from sutra_fast.server.batcher import MicroBatcher
from sutra_fast.server.cache import VectorCache
from sutra_fast.server.config import ServerConfig
from sutra_fast.server.metrics import Metrics
from sutra_fast.server.middleware import auth, errors, request_context, stamp_request_id
from sutra_fast.server.models import Models
from sutra_fast.server.runner import Limiter
from sutra_fast.server.shutdown import Drain, close_when_draining

log = logging.getLogger("sutra_fast.server")



def create_app(config: Optional[ServerConfig] = None, *, embedder=None,
               generator=None) -> web.Application:
    """Build the aiohttp application.

    Arguments:
        config: the settings (default: ``ServerConfig()``).
        embedder, generator: already-loaded models to serve instead of loading
            the configured ones (tests, embedding the server in another app).
    """
    config = (config or ServerConfig()).check()
    app = web.Application(middlewares=[request_context, errors, auth],
                          client_max_size=config.max_body_bytes)
    app[K.CONFIG] = config
    app[K.METRICS] = Metrics()
    app[K.MODELS] = Models(config, embedder=embedder, generator=generator)
    app[K.CACHE] = VectorCache(config.embed_cache_size)
    app[K.LIMITER] = Limiter(config.max_concurrent_generations, config.retry_after,
                             app[K.METRICS])
    app[K.DRAIN] = Drain()
    app[K.STARTED] = time.monotonic()
    app[K.STARTED_WALL] = time.time()
    app.add_routes(routes_ops.routes)
    app.add_routes(routes_embed.routes)
    app.add_routes(routes_generate.routes)
    app.on_response_prepare.append(stamp_request_id)
    app.on_response_prepare.append(close_when_draining)
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


async def _startup(app: web.Application) -> None:
    cfg = app[K.CONFIG]
    log.info("API-key auth: %s", "on" if cfg.api_key else "off (no --api-key / SUTRA_API_KEY)")
    # One ONNX Runtime call at a time (it is multi-threaded itself); generations
    # each get a thread up to the concurrency limit.
    app[K.EMBED_EXECUTOR] = ThreadPoolExecutor(1, thread_name_prefix="sutra-embed")
    app[K.GEN_EXECUTOR] = ThreadPoolExecutor(cfg.max_concurrent_generations,
                                             thread_name_prefix="sutra-gen")
    batcher = MicroBatcher(app[K.MODELS].embed, app[K.METRICS], app[K.EMBED_EXECUTOR],
                           enabled=cfg.micro_batching, wait_ms=cfg.batch_wait_ms,
                           max_texts=cfg.batch_max_texts, max_tokens=cfg.batch_max_tokens,
                           max_queue=cfg.max_queue, retry_after=cfg.retry_after)
    batcher.start()
    app[K.BATCHER] = batcher
    app[K.LOAD_TASK] = asyncio.get_running_loop().create_task(_load(app))


async def _load(app: web.Application) -> None:
    models = app[K.MODELS]
    await models.load()
    if models.failed and app[K.CONFIG].exit_on_load_error:
        log.error("shutting down: a model failed to load and --exit-on-load-error is on "
                  "(exit status 1)")
        ops.shut_down(app)


async def _shutdown(app: web.Application) -> None:
    """The listener is closed: in-flight requests get --shutdown-timeout seconds."""
    await app[K.DRAIN].shutdown(app[K.CONFIG].shutdown_timeout)


async def _cleanup(app: web.Application) -> None:
    """After in-flight requests are done: drain the batcher, stop the threads."""
    task = app.get(K.LOAD_TASK)
    if task is not None and not task.done():
        log.info("the models are still loading: loading abandoned")
        app[K.MODELS].abort.set()  # ends a wait for another process's conversion lock
        task.cancel()
    await app[K.BATCHER].stop()
    app[K.EMBED_EXECUTOR].shutdown(wait=True)
    app[K.GEN_EXECUTOR].shutdown(wait=True)
    app[K.DRAIN].done()
