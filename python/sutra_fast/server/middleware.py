"""Request middleware: request id, metrics, API key, and the one error envelope.

Order (outermost first): ``request_context`` stamps the request id and start
time and records the metrics, ``errors`` turns every failure into the JSON
envelope, ``auth`` checks the API key.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid

from aiohttp import web

from sutra_fast.server import keys as K

from sutra_fast.server.errors import ApiError, error_response, from_http_exception

log = logging.getLogger("sutra_fast.server")
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
OPEN_ROUTES = {"/health"}


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def request_context(request: web.Request, handler):
    request[K.T0] = time.perf_counter()
    rid = request.headers.get("X-Request-ID", "")
    request[K.REQUEST_ID] = rid if _RID.match(rid) else uuid.uuid4().hex
    status = 500
    drain = request.app[K.DRAIN]
    drain.watch(request.protocol)  # so a shutdown signal can close idle connections
    try:
        with drain.request():
            resp = await handler(request)
        status = resp.status
        return resp
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    except ConnectionResetError:
        status = 499
        raise
    finally:
        m = request.app[K.METRICS]
        label = _route_label(request)
        m.requests.labels(label, request.method, str(status)).inc()
        elapsed = time.perf_counter() - request[K.T0]
        m.latency.labels(label).observe(elapsed)
        log.debug("%s %s -> %d in %.1f ms (request %s)", request.method, request.path, status,
                  elapsed * 1e3, request[K.REQUEST_ID])


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streaming ones and errors included."""
    request[K.PREPARED] = True
    rid = request.get(K.REQUEST_ID)
    if rid:
        response.headers["X-Request-ID"] = rid


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:  # redirects and the like pass through
            raise
        return error_response(from_http_exception(e))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 - never a traceback to the client
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path,
                      request.get(K.REQUEST_ID))
        if request.get(K.PREPARED):
            raise
        return error_response(ApiError(500, "internal server error; the request id is in the "
                                            "X-Request-ID header and the server log",
                                       "internal_error"))


def _presented_key(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key", "")


def authorized(request: web.Request) -> bool:
    """No API key is configured, or the request carries it."""
    key = request.app[K.CONFIG].api_key
    if not key:
        return True
    given = _presented_key(request)
    # surrogateescape: aiohttp decodes header bytes that way, so a non-UTF-8
    # key is a wrong key, not an encoding error.
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                               key.encode("utf-8", "surrogateescape"))


@web.middleware
async def auth(request: web.Request, handler):
    if request.path not in OPEN_ROUTES and not authorized(request):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY' "
                            "or 'X-API-Key: KEY'", "invalid_api_key")
    return await handler(request)
