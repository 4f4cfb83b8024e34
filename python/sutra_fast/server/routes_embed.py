"""Embedding routes: ``POST /v1/embeddings`` (OpenAI) and ``POST /embed`` (Sutra)."""
from __future__ import annotations

import asyncio
import base64
import time
from typing import Optional

import numpy as np
from aiohttp import web

from sutra_fast.server import keys as K

from sutra_fast.server import validate as v
from sutra_fast.server.errors import ApiError

routes = web.RouteTableDef()


async def _token_counts(emb, texts: list) -> np.ndarray:
    """Tokens per text (special tokens included, no truncation)."""
    def count():
        ids = emb.tokenizer.encode_batch(texts, pad=False)["input_ids"]
        return np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(texts))
    if len(texts) <= 64:  # compiled and quick: not worth a thread hop
        return count()
    return await asyncio.get_running_loop().run_in_executor(None, count)


async def embed_texts(request: web.Request, texts: list, *, normalize: bool,
                      dimensions: Optional[int], auto_truncate: bool,
                      fields: tuple = ("input", "dimensions")) -> tuple:
    """The shared path: limits, cache, batcher. -> (vectors [n, d], tokens, cached_count).
    ``fields``: the route's names for the texts and the dimensions (errors name them)."""
    texts_field, dims_field = fields
    app = request.app
    cfg, models, metrics = app[K.CONFIG], app[K.MODELS], app[K.METRICS]
    emb = models.embed.require(cfg.retry_after)
    if len(texts) > cfg.max_texts:
        raise ApiError(413, f"too many texts: {len(texts)} > the limit of {cfg.max_texts} "
                            "per request (--max-texts); split the request", "too_many_inputs",
                       param=texts_field)
    if dimensions is not None and not 1 <= dimensions <= emb.dimension:
        raise ApiError(422, f"'{dims_field}' must be between 1 and {emb.dimension} for "
                            f"{emb.model_id}, got {dimensions}", "invalid_value", param=dims_field)
    limit = min(cfg.max_input_tokens or emb.max_length, emb.max_length)
    counts = await _token_counts(emb, texts)
    too_long = np.flatnonzero(counts > limit)
    if len(too_long) and not auto_truncate:
        i = int(too_long[0])
        raise ApiError(413, f"text {i} has {int(counts[i])} tokens, over the limit of {limit} "
                            "tokens per text; shorten it or send auto_truncate: true",
                       "input_too_long", param=texts_field)
    counts = np.minimum(counts, emb.max_length)  # what the model actually reads
    cache = app[K.CACHE]
    model_id = models.embed.model_id
    out: list = [None] * len(texts)
    missing = []
    for i, t in enumerate(texts):
        hit = cache.get((model_id, t, normalize, dimensions))
        if hit is not None:
            out[i] = hit
        else:
            missing.append(i)
    cached = len(texts) - len(missing)
    metrics.cache_hits.inc(cached)
    metrics.cache_misses.inc(len(missing))
    if missing:
        todo = [texts[i] for i in missing]
        vecs = await app[K.BATCHER].embed(todo, int(counts[missing].sum()), normalize, dimensions)
        for k, i in enumerate(missing):
            out[i] = vecs[k]
            cache.put((model_id, texts[i], normalize, dimensions), vecs[k])
    return np.stack(out).astype(np.float32, copy=False), int(counts.sum()), cached


@routes.post("/v1/embeddings")
async def openai_embeddings(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    models = request.app[K.MODELS]
    models.embed.require(request.app[K.CONFIG].retry_after)
    models.embed.check_name(body.get("model"))
    texts = v.get_texts(body, "input")
    fmt = v.get_str(body, "encoding_format", "float", choices=("float", "base64"))
    dims = v.get_int(body, "dimensions", None, lo=1)
    truncate = v.get_bool(body, "auto_truncate", request.app[K.CONFIG].auto_truncate)
    vecs, tokens, _ = await embed_texts(request, texts, normalize=True, dimensions=dims,
                                        auto_truncate=truncate)
    if fmt == "base64":
        le = vecs.astype("<f4", copy=False)
        items = [base64.b64encode(row.tobytes()).decode("ascii") for row in le]
    else:
        items = vecs.tolist()
    return web.json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)],
        "model": models.embed.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


@routes.post("/embed")
async def sutra_embed(request: web.Request) -> web.Response:
    t0 = time.perf_counter()
    body = await v.read_json(request)
    models = request.app[K.MODELS]
    models.embed.require(request.app[K.CONFIG].retry_after)
    models.embed.check_name(body.get("model"))
    texts = v.get_texts(body, "texts")
    normalize = v.get_bool(body, "normalize", True)
    dims = v.get_int(body, "target_dimension", None, lo=1)
    truncate = v.get_bool(body, "auto_truncate", request.app[K.CONFIG].auto_truncate)
    vecs, tokens, cached = await embed_texts(request, texts, normalize=normalize,
                                             dimensions=dims, auto_truncate=truncate,
                                             fields=("texts", "target_dimension"))
    return web.json_response({
        "embeddings": vecs.tolist(),
        "dimension": int(vecs.shape[1]),
        "dimensions": int(vecs.shape[1]),
        "model": models.embed.model_id,
        "processing_time_ms": round((time.perf_counter() - t0) * 1e3, 3),
        "cached_count": cached,
        "batch_size": len(texts),
        "tokens": tokens,
    })
