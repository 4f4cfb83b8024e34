"""Generation routes: ``/v1/completions`` and ``/v1/chat/completions`` (OpenAI, SSE
streaming) and ``/generate`` (Sutra, NDJSON streaming)."""
from __future__ import annotations

import json
import time
import uuid

from aiohttp import web

from sutra_fast.server import keys as K

from sutra_fast.generation import CHAT_STOP, chat_prompt
from sutra_fast.server import validate as v
from sutra_fast.server.errors import ApiError, envelope
from sutra_fast.server.runner import Generation

routes = web.RouteTableDef()
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# ------------------------------------------------------------------ request parsing
def _sampling(body: dict, cfg, *, stop_field: str = "stop") -> dict:
    # OpenAI's newer name wins when given; null means "not given", as for every field.
    field = ("max_completion_tokens" if body.get("max_completion_tokens") is not None
             else "max_tokens")
    max_tokens = body.get(field)
    return dict(
        max_tokens=v.get_int({field: max_tokens}, field, cfg.default_max_tokens, lo=0,
                             hi=cfg.max_tokens_limit),
        temperature=v.get_float(body, "temperature", 1.0, lo=0.0, hi=100.0),
        top_p=v.get_float(body, "top_p", 0.85 if stop_field == "stop_sequences" else 1.0,
                          lo=0.0, hi=1.0),
        top_k=v.get_int(body, "top_k", 0, lo=0, hi=2**63 - 1),  # >= vocabulary: no cut
        min_p=v.get_float(body, "min_p", 0.0, lo=0.0, hi=1.0),
        presence_penalty=v.get_float(body, "presence_penalty", 0.0, lo=-2.0, hi=2.0),
        frequency_penalty=v.get_float(body, "frequency_penalty", 0.0, lo=-2.0, hi=2.0),
        seed=v.get_int(body, "seed", None, lo=0, hi=2**63 - 1),
        stop=v.get_stop(body, stop_field),
    )


def _check_n(body: dict) -> None:
    if v.get_int(body, "n", 1, lo=1) != 1:
        raise v.bad("n", "must be 1 (one completion per request)")
    if body.get("best_of") not in (None, 1):
        raise v.bad("best_of", "must be 1")
    if body.get("echo"):
        raise v.bad("echo", "is not supported")
    if body.get("logprobs") not in (None, False, 0):
        raise v.bad("logprobs", "is not supported")


def _prompt_ids(gen, prompt, field: str = "prompt") -> list:
    """A str, [str] (one), [int] or [[int]] (one) -> token ids."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        tok = gen.tokenizer
        if tok is None:
            raise ApiError(422, "this model's vocabulary is not the RWKV World one; send the "
                                "prompt as a list of token ids", "invalid_value", param=field)
        v.check_utf8(prompt, field)
        return tok.encode(prompt)
    if isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                        for t in prompt):
        bad = next((t for t in prompt if not 0 <= t < gen.vocab_size), None)
        if bad is not None:
            raise v.bad(field, f"token id {bad} is outside the vocabulary [0, {gen.vocab_size})")
        return list(prompt)
    if isinstance(prompt, list):
        raise v.bad(field, "must be a string, a list with one string, or a list of token ids "
                           "(one prompt per request)")
    raise v.bad(field, "must be a string or a list of token ids")


def _messages(body: dict) -> list:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        raise v.bad("messages", "is required: a list of {role, content}")
    if not msgs:
        raise ApiError(400, "'messages' is empty", "empty_input", param="messages")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise v.bad("messages", f"item {i} must be an object")
        role = m.get("role")
        if role not in _ROLES:
            raise v.bad("messages", f"item {i} role must be one of {', '.join(_ROLES)}; got {role!r}")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = []
            for p in content:
                if not (isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)):
                    raise v.bad("messages", f"item {i} content parts must be text parts")
                parts.append(p["text"])
            content = "".join(parts)
        if content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise v.bad("messages", f"item {i} content must be a string or text parts")
        out.append({"role": _ROLES[role], "content": content})
    return out


def _start(request: web.Request, ids: list, sampling: dict) -> Generation:
    """Check limits, create the stream (sampler errors -> 422) and start decoding."""
    app = request.app
    cfg = app[K.CONFIG]
    gen = app[K.MODELS].generate.model
    if len(ids) > cfg.max_prompt_tokens:
        raise ApiError(413, f"prompt has {len(ids)} tokens, over the limit of "
                            f"{cfg.max_prompt_tokens} (--max-prompt-tokens)", "prompt_too_long",
                       param="prompt")
    try:
        stream = gen.stream(ids, **sampling)
    except (ValueError, TypeError) as e:
        raise ApiError(422, str(e), "invalid_value") from None
    app[K.LIMITER].acquire()
    try:
        g = Generation(stream, app[K.GEN_EXECUTOR], app[K.METRICS], request[K.T0])
    except BaseException:
        app[K.LIMITER].release()
        raise
    app[K.DRAIN].generations.add(g)  # cancelled at the shutdown deadline
    return g


async def _finish(request: web.Request, g: Generation) -> None:
    """Always called: stop the worker if the client left, then free the slot."""
    try:
        if g.result is None:
            g.cancel()
            await g.wait_closed()
    finally:
        request.app[K.DRAIN].generations.discard(g)
        request.app[K.LIMITER].release()


async def _collect(g: Generation) -> str:
    parts = [p async for p in g]
    return "".join(parts)


def _usage(r) -> dict:
    return dict(r.usage)


def _finish_reason(r) -> str:
    # "cancelled" (the shutdown deadline) is reported as "length": the text was cut
    # short, a value every OpenAI client knows.
    return "length" if r.finish_reason in ("length", "cancelled") else "stop"


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    return resp


async def _send_sse(resp: web.StreamResponse, obj) -> None:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    await resp.write(f"data: {data}\n\n".encode())


def _gen_ready(request: web.Request, body: dict):
    models, cfg = request.app[K.MODELS], request.app[K.CONFIG]
    gen = models.generate.require(cfg.retry_after)
    models.generate.check_name(body.get("model"))
    return gen, models.generate.model_id


def _stream_options(body: dict) -> bool:
    so = body.get("stream_options")
    if so is None:
        return False
    if not isinstance(so, dict):
        raise v.bad("stream_options", "must be an object")
    return v.get_bool(so, "include_usage", False)


# ------------------------------------------------------------------ OpenAI routes
async def _openai(request: web.Request, chat: bool) -> web.StreamResponse:
    body = await v.read_json(request)
    gen, model_id = _gen_ready(request, body)
    cfg = request.app[K.CONFIG]
    _check_n(body)
    sampling = _sampling(body, cfg)
    stream = v.get_bool(body, "stream", False)
    include_usage = _stream_options(body)
    if chat:
        try:
            prompt = chat_prompt(_messages(body))
        except (ValueError, TypeError) as e:
            raise v.bad("messages", str(e)) from None
        ids = _prompt_ids(gen, prompt, "messages")
        sampling["stop"] = [CHAT_STOP] + sampling["stop"]
        obj, prefix = ("chat.completion.chunk" if stream else "chat.completion"), "chatcmpl-"
    else:
        if "prompt" not in body:
            raise v.bad("prompt", "is required")
        ids = _prompt_ids(gen, body["prompt"])
        obj, prefix = "text_completion", "cmpl-"
    rid, created = prefix + uuid.uuid4().hex[:24], int(time.time())
    head = {"id": rid, "object": obj, "created": created, "model": model_id}
    g = _start(request, ids, sampling)
    try:
        if not stream:
            text = await _collect(g)
            r = g.result
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text},
                          "logprobs": None, "finish_reason": _finish_reason(r)}
            else:
                choice = {"index": 0, "text": text, "logprobs": None,
                          "finish_reason": _finish_reason(r)}
            return web.json_response({**head, "choices": [choice], "usage": _usage(r),
                                      "system_fingerprint": None})
        resp = await _sse(request)
        usage_null = {"usage": None} if include_usage else {}

        def chunk(piece, finish=None, first=False):
            if chat:
                delta = {"role": "assistant", "content": piece} if first else (
                    {"content": piece} if finish is None else {})
                c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                c = {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [c], **usage_null}

        try:
            if chat:
                await _send_sse(resp, chunk("", first=True))
            async for piece in g:
                await _send_sse(resp, chunk(piece))
            r = g.result
            await _send_sse(resp, chunk("", finish=_finish_reason(r)))
            if include_usage:
                await _send_sse(resp, {**head, "choices": [], "usage": _usage(r)})
        except ApiError as e:  # headers are gone: report in the stream
            await _send_sse(resp, envelope(e.status, e.message, e.code))
        await _send_sse(resp, "[DONE]")
        await resp.write_eof()
        return resp
    finally:
        await _finish(request, g)


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    return await _openai(request, chat=False)


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _openai(request, chat=True)


# ------------------------------------------------------------------ Sutra route
@routes.post("/generate")
async def sutra_generate(request: web.Request) -> web.StreamResponse:
    body = await v.read_json(request)
    gen, model_id = _gen_ready(request, body)
    cfg = request.app[K.CONFIG]
    if "prompt" not in body:
        raise v.bad("prompt", "is required")
    if not isinstance(body["prompt"], str):
        raise v.bad("prompt", "must be a string")
    sampling = _sampling(body, cfg, stop_field="stop_sequences")
    stream = v.get_bool(body, "stream", False)
    ids = _prompt_ids(gen, body["prompt"])
    g = _start(request, ids, sampling)
    t0 = request[K.T0]

    def final(r, text):
        return {"text": text, "tokens_used": r.usage["completion_tokens"],
                "prompt_tokens": r.usage["prompt_tokens"],
                "generation_time": round(time.perf_counter() - t0, 6),
                "model_used": model_id, "finish_reason": _finish_reason(r)}

    try:
        if not stream:
            text = await _collect(g)
            return web.json_response(final(g.result, text))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        parts = []
        try:
            async for piece in g:
                parts.append(piece)
                await resp.write((json.dumps({"token": piece, "done": False}) + "\n").encode())
            await resp.write((json.dumps({**final(g.result, "".join(parts)), "done": True})
                              + "\n").encode())
        except ApiError as e:
            await resp.write((json.dumps({**envelope(e.status, e.message, e.code), "done": True})
                              + "\n").encode())
        await resp.write_eof()
        return resp
    finally:
        await _finish(request, g)
