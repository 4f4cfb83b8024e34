"""Small request-schema checks: each failure is a 422 that names the field."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sutra_fast.server.errors import ApiError

_MISSING = object()


async def read_json(request: web.Request) -> dict:
    """The body as a JSON object: 400 when it does not parse, 422 when not an object."""
    try:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body too large (limit {request.client_max_size} bytes, "
                            "--max-body-bytes)", "body_too_large") from None
    except web.RequestPayloadError as e:  # e.g. a gzip body that does not decode
        # The rest of the body cannot be parsed either: mark it read (else aiohttp
        # tries to drain it after the response and logs a traceback) and close
        # the connection after answering.
        request.content.feed_eof()
        raise ApiError(400, f"request body could not be read: {e}", "invalid_json",
                       close_connection=True) from None
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object", "invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"request body is not valid JSON: {e}", "invalid_json") from None
    except RecursionError:  # json.loads recurses once per nesting level
        raise ApiError(400, "request body is nested too deeply to be a valid request",
                       "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(422, f"request body must be a JSON object, got {_kind(body)}", "invalid_type")
    return body


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def bad(field: str, message: str) -> ApiError:
    return ApiError(422, f"'{field}' {message}", "invalid_value", param=field)


def _in_range(field: str, v, lo, hi):
    if lo is not None and v < lo:
        raise bad(field, f"must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise bad(field, f"must be <= {hi}, got {v}")
    return v


def get_bool(body: dict, field: str, default: bool) -> bool:
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if not isinstance(v, bool):
        raise bad(field, f"must be a boolean, got {_kind(v)}")
    return v


def get_int(body: dict, field: str, default, *, lo=None, hi=None):
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise bad(field, f"must be an integer, got {_kind(v)} {json.dumps(v)}")
    v = int(v)
    return _in_range(field, v, lo, hi)


def get_float(body: dict, field: str, default, *, lo=None, hi=None):
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise bad(field, f"must be a number, got {_kind(v)}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise bad(field, "must be a finite number")
    return _in_range(field, v, lo, hi)


def get_str(body: dict, field: str, default, *, choices=None):
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if not isinstance(v, str):
        raise bad(field, f"must be a string, got {_kind(v)}")
    if choices is not None and v not in choices:
        raise bad(field, f"must be one of {', '.join(choices)}; got {v!r}")
    return v


def get_stop(body: dict, field: str) -> list:
    """A string, a list of strings, or null -> list (OpenAI allows up to 4; we allow 16)."""
    v = body.get(field)
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    if isinstance(v, list) and all(isinstance(s, str) for s in v):
        if len(v) > 16:
            raise bad(field, f"may hold at most 16 strings, got {len(v)}")
        return [s for s in v if s]
    raise bad(field, "must be a string or a list of strings")


def get_texts(body: dict, field: str) -> list:
    """A string or a non-empty list of strings (400 when empty)."""
    if field not in body or body[field] is None:
        raise bad(field, "is required")
    v = body[field]
    if isinstance(v, str):
        v = [v]
    elif not isinstance(v, list):
        raise bad(field, f"must be a string or a list of strings, got {_kind(v)}")
    if not v:
        raise ApiError(400, f"'{field}' is empty; send at least one text", "empty_input", param=field)
    for i, t in enumerate(v):
        if not isinstance(t, str):
            raise bad(field, f"must hold only strings; item {i} is {_kind(t)}"
                             + (" (token-id input is not supported)" if isinstance(t, (int, list)) else ""))
        if not t:
            raise ApiError(400, f"'{field}' item {i} is an empty string", "empty_input", param=field)
        check_utf8(t, f"{field}[{i}]")
    return v


def check_utf8(text: str, where: str) -> None:
    """JSON may carry lone surrogates (\\ud800) that have no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(422, f"'{where}' holds a lone surrogate code point (invalid Unicode)",
                       "invalid_value", param=where.split("[")[0]) from None
