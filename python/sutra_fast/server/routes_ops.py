"""Operations routes: ``/health``, ``/info``, ``/v1/models``, ``/metrics``."""
from __future__ import annotations

import time

from aiohttp import web

from sutra_fast.server import keys as K

from sutra_fast._version import __version__
from sutra_fast.server.middleware import authorized

routes = web.RouteTableDef()

ROUTES = ["POST /v1/embeddings", "POST /embed", "POST /v1/completions",
          "POST /v1/chat/completions", "POST /generate", "GET /health", "GET /info",
          "GET /v1/models", "GET /metrics"]


# /health is open even with an API key; a load error names files and folders
HIDDEN_ERROR = "model failed to load (details need the API key)"


def _slot_info(slot, show_error: bool = True) -> dict:
    return {"state": slot.state, "model_id": slot.model_id,
            **({"error": slot.error if show_error else HIDDEN_ERROR} if slot.error else {})}


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    models = request.app[K.MODELS]
    show = authorized(request)
    body = {
        "status": "healthy" if models.ready else
                  ("loading" if "loading" in (models.embed.state, models.generate.state)
                   else "unhealthy"),
        "model_loaded": models.ready,
        "embedding": _slot_info(models.embed, show),
        "generation": _slot_info(models.generate, show),
        "uptime_s": round(time.monotonic() - request.app[K.STARTED], 3),
        "version": __version__,
    }
    return web.json_response(body, status=200 if models.ready else 503)


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    app = request.app
    cfg, models = app[K.CONFIG], app[K.MODELS]
    emb = models.embed.model
    gen = models.generate.model
    embedding = _slot_info(models.embed)
    if emb is not None:
        embedding.update(dimension=emb.dimension, max_length=emb.max_length,
                         max_input_tokens=min(cfg.max_input_tokens or emb.max_length, emb.max_length),
                         pooling=getattr(emb, "pooling", None), quantize=getattr(emb, "quantize", None))
    generation = _slot_info(models.generate)
    if gen is not None:
        generation.update(version=gen.version, n_layer=gen.n_layer, n_embd=gen.n_embd,
                          vocab_size=gen.vocab_size, dtype=gen.dtype,
                          prompt_cache=gen.prompt_cache.max_entries if gen.prompt_cache else 0)
    return web.json_response({
        "version": __version__,
        "embedding": embedding,
        "generation": generation,
        "limits": {
            "max_body_bytes": cfg.max_body_bytes,
            "max_texts_per_request": cfg.max_texts,
            "max_input_tokens": embedding.get("max_input_tokens", cfg.max_input_tokens),
            "auto_truncate": cfg.auto_truncate,
            "max_batch_size": cfg.batch_max_texts,
            "max_batch_tokens": cfg.batch_max_tokens,
            "micro_batching": cfg.micro_batching,
            "batch_wait_ms": cfg.batch_wait_ms,
            "max_queue_texts": cfg.max_queue,
            "embed_cache_size": cfg.embed_cache_size,
            "max_concurrent_generations": cfg.max_concurrent_generations,
            "default_max_tokens": cfg.default_max_tokens,
            "max_tokens_limit": cfg.max_tokens_limit,
            "max_prompt_tokens": cfg.max_prompt_tokens,
        },
        "auth": bool(cfg.api_key),
        "routes": ROUTES,
    })


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    models = request.app[K.MODELS]
    created = int(request.app[K.STARTED_WALL])
    data = []
    for slot, kind in ((models.embed, "embedding"), (models.generate, "generation")):
        if slot.model_id:
            data.append({"id": slot.model_id, "object": "model", "created": created,
                         "owned_by": "sutra", "type": kind})
    return web.json_response({"object": "list", "data": data})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    m = request.app[K.METRICS]
    m.model_loaded.labels("embedding").set(1 if request.app[K.MODELS].embed.state == "ready" else 0)
    m.model_loaded.labels("generation").set(
        1 if request.app[K.MODELS].generate.state == "ready" else 0)
    m.queue_texts.set(request.app[K.BATCHER].queued if request.app.get(K.BATCHER) else 0)
    body, ctype = m.render()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = ctype
    return resp
