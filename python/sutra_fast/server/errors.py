"""One error type for every client-visible failure, rendered as the OpenAI envelope
``{"error": {"message", "type", "code"}}``."""
from __future__ import annotations

from typing import Optional

from aiohttp import web

# HTTP status -> OpenAI-style error type.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raise from a handler; the middleware turns it into the JSON envelope."""

    def __init__(self, status: int, message: str, code: str, *,
                 retry_after: Optional[int] = None, param: Optional[str] = None,
                 close_connection: bool = False):
        super().__init__(message)
        self.close_connection = close_connection
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.param = param


def envelope(status: int, message: str, code: str, param: Optional[str] = None) -> dict:
    err = {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "code": code}
    if param is not None:
        err["param"] = param
    return {"error": err}


def error_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    resp = web.json_response(envelope(err.status, err.message, err.code, err.param),
                             status=err.status, headers=headers)
    if err.close_connection:
        resp.force_close()
    return resp


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """aiohttp's own errors (router 404/405, body too large) in our envelope."""
    status = exc.status
    if status == 404:
        return ApiError(404, "no such route; see GET /info for the routes", "not_found")
    if status == 405:
        return ApiError(405, f"method not allowed; allowed: {exc.headers.get('Allow', '')}",
                        "method_not_allowed")
    if status == 413:
        return ApiError(413, f"request body too large: {exc.text or ''}".strip(), "body_too_large")
    return ApiError(status, exc.reason or "error", f"http_{status}")
