"""Typed keys for what the app and each request carry (aiohttp warns on str keys)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

CONFIG = web.AppKey("config", object)
METRICS = web.AppKey("metrics", object)
MODELS = web.AppKey("models", object)
CACHE = web.AppKey("cache", object)
LIMITER = web.AppKey("limiter", object)
BATCHER = web.AppKey("batcher", object)
EMBED_EXECUTOR = web.AppKey("embed_executor", ThreadPoolExecutor)
GEN_EXECUTOR = web.AppKey("gen_executor", ThreadPoolExecutor)
DRAIN = web.AppKey("drain", object)
LOAD_TASK = web.AppKey("load_task", asyncio.Task)
STARTED = web.AppKey("started", float)
STARTED_WALL = web.AppKey("started_wall", float)

T0 = web.RequestKey("t0", float)
REQUEST_ID = web.RequestKey("request_id", str)
PREPARED = web.RequestKey("prepared", bool)
