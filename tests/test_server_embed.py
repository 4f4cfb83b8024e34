"""Server: embedding routes, micro-batching, cache and the embedding limits."""
from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from server_helpers import embedder, metric, post_error, run  # noqa: F401
from sutra_fast.server import ServerConfig

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings map text to vectors.",
         "ಕನ್ನಡ ಪಠ್ಯ", "short", "A somewhat longer sentence about servers, batching and caches."]


def test_openai_embeddings_float_shape_and_values(embedder):
    async def go(client):
        resp = await client.post("/v1/embeddings", json={"input": TEXTS, "model": embedder.model_id})
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        return await resp.json()
    body = run(go, embedder=embedder)
    # The OpenAI SDK's CreateEmbeddingResponse: object, data[{object, index, embedding}], model, usage
    assert body["object"] == "list"
    assert body["model"] == embedder.model_id
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in body["data"])
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, embedder.embed(TEXTS), atol=1e-5)
    n_tokens = sum(len(embedder.tokenizer.encode(t)) for t in TEXTS)
    assert body["usage"] == {"prompt_tokens": n_tokens, "total_tokens": n_tokens}


def test_openai_embeddings_base64_and_dimensions(embedder):
    async def go(client):
        resp = await client.post("/v1/embeddings", json={
            "input": "one text", "encoding_format": "base64", "dimensions": 64, "model": "default"})
        assert resp.status == 200
        return await resp.json()
    body = run(go, embedder=embedder)
    (item,) = body["data"]
    assert isinstance(item["embedding"], str)
    vec = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")  # how the SDK decodes it
    assert vec.shape == (64,)
    np.testing.assert_allclose(vec, embedder.embed(["one text"], dimensions=64)[0], atol=1e-5)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5


def test_sutra_embed_shape_cache_and_normalize(embedder):
    async def go(client):
        first = await (await client.post("/embed", json={"texts": TEXTS[:3]})).json()
        second = await (await client.post("/embed", json={"texts": TEXTS[:4]})).json()
        raw = await (await client.post("/embed", json={"texts": TEXTS[:1], "normalize": False,
                                                       "target_dimension": 32})).json()
        metrics = await (await client.get("/metrics")).text()
        return first, second, raw, metrics
    first, second, raw, metrics = run(go, embedder=embedder)
    assert set(first) >= {"embeddings", "dimension", "dimensions", "model", "processing_time_ms",
                          "cached_count", "batch_size"}
    assert first["dimension"] == first["dimensions"] == embedder.dimension
    assert first["batch_size"] == 3 and first["cached_count"] == 0
    assert first["model"] == embedder.model_id
    assert second["cached_count"] == 3 and second["batch_size"] == 4
    np.testing.assert_allclose(np.array(second["embeddings"]), embedder.embed(TEXTS[:4]), atol=1e-5)
    # normalize / dimensions are part of the cache key: no false hit
    assert raw["cached_count"] == 0 and raw["dimension"] == 32
    np.testing.assert_allclose(np.array(raw["embeddings"]),
                               embedder.embed(TEXTS[:1], normalize=False, dimensions=32), atol=1e-4)
    assert metric(metrics, "sutra_embed_cache_hits_total") == 3
    assert metric(metrics, "sutra_embed_cache_misses_total") == 3 + 1 + 1


def test_concurrent_requests_are_micro_batched_and_exact(embedder):
    texts = [f"request number {i}: " + "word " * (i % 7) for i in range(64)]
    expected = np.stack([embedder.embed([t])[0] for t in texts])  # sequential, one by one

    async def go(client):
        async def one(t):
            resp = await client.post("/v1/embeddings", json={"input": t})
            assert resp.status == 200
            return (await resp.json())["data"][0]["embedding"]
        got = await asyncio.gather(*(one(t) for t in texts))
        return got, await (await client.get("/metrics")).text()
    got, metrics = run(go, ServerConfig(batch_wait_ms=20, embed_cache_size=0), embedder=embedder)
    np.testing.assert_allclose(np.array(got, dtype=np.float32), expected, atol=1e-5)
    calls = metric(metrics, "sutra_embed_batch_size_count")
    assert metric(metrics, "sutra_embed_batch_size_sum") == 64
    assert metric(metrics, "sutra_embed_batch_requests_sum") == 64
    assert 1 <= calls < 64, f"64 concurrent requests took {calls} model calls: not batched"
    assert metric(metrics, "sutra_embed_batch_tokens_count") == calls


def test_micro_batching_off_is_one_call_per_request(embedder):
    async def go(client):
        await asyncio.gather(*(client.post("/embed", json={"texts": [f"t{i}"]}) for i in range(8)))
        return await (await client.get("/metrics")).text()
    metrics = run(go, ServerConfig(micro_batching=False), embedder=embedder)
    assert metric(metrics, "sutra_embed_batch_size_count") == 8


def test_too_long_text_truncated_or_rejected(embedder):
    long_text = "word " * 1000  # ~1000 tokens > 256

    async def go(client):
        ok = await client.post("/embed", json={"texts": [long_text]})
        assert ok.status == 200
        err = await post_error(client, "/embed", 413, "input_too_long",
                               json={"texts": ["short", long_text], "auto_truncate": False})
        return await ok.json(), err
    body, err = run(go, embedder=embedder)
    np.testing.assert_allclose(np.array(body["embeddings"]), embedder.embed([long_text]), atol=1e-5)
    assert "text 1" in err["message"] and "256" in err["message"] and err["param"] == "texts"

    async def strict(client):
        return await post_error(client, "/v1/embeddings", 413, "input_too_long",
                                json={"input": long_text})
    err = run(strict, ServerConfig(auto_truncate=False, max_input_tokens=100), embedder=embedder)
    assert "100" in err["message"] and err["param"] == "input"


def test_embedding_limits_and_schema_errors(embedder):
    async def go(client):
        err = await post_error(client, "/embed", 413, "too_many_inputs", json={"texts": ["a"] * 5})
        assert err["param"] == "texts"
        err = await post_error(client, "/embed", 422, "invalid_value",
                               json={"texts": ["a"], "target_dimension": 385})
        assert err["param"] == "target_dimension" and "'target_dimension'" in err["message"]
        err = await post_error(client, "/v1/embeddings", 422, "invalid_value",
                               json={"input": ["a"], "dimensions": 385})
        assert err["param"] == "dimensions"
        await post_error(client, "/embed", 413, "body_too_large", json={"texts": ["x" * 5000]})
        await post_error(client, "/embed", 400, "invalid_json", data=b"{not json")
        await post_error(client, "/embed", 400, "invalid_json", data=b"")
        await post_error(client, "/embed", 400, "empty_input", json={"texts": []})
        await post_error(client, "/v1/embeddings", 400, "empty_input", json={"input": ""})
        await post_error(client, "/v1/embeddings", 422, "invalid_value", json={})
        await post_error(client, "/v1/embeddings", 422, "invalid_value", json={"input": [1, 2]})
        await post_error(client, "/v1/embeddings", 422, "invalid_value",
                         json={"input": "x", "encoding_format": "int8"})
        await post_error(client, "/v1/embeddings", 422, "invalid_value",
                         json={"input": "x", "dimensions": "64"})
        await post_error(client, "/v1/embeddings", 422, "invalid_value",
                         json={"input": "x", "dimensions": 100000})
        await post_error(client, "/embed", 422, "invalid_value", json={"texts": "x", "normalize": "yes"})
        await post_error(client, "/embed", 422, "invalid_type", json=["x"])
        err = await post_error(client, "/v1/embeddings", 404, "model_not_found",
                               json={"input": "x", "model": "text-embedding-3-small"})
        assert embedder.model_id in err["message"]
        short = embedder.model_id.rsplit("/", 1)[1]   # the id without its organisation
        for name in (embedder.model_id, short, "default"):
            r = await client.post("/v1/embeddings", json={"input": "x", "model": name})
            assert r.status == 200, name
        await post_error(client, "/v1/embeddings", 404, "model_not_found",
                         json={"input": "x", "model": "/" + short})
    run(go, ServerConfig(max_texts=4, max_body_bytes=4096), embedder=embedder)


def test_full_queue_answers_429_with_retry_after(embedder):
    async def go(client):
        # The batcher waits 500 ms for company, so the first request is still queued
        # when the second arrives and would overflow the 3-text queue.
        first = asyncio.ensure_future(client.post("/embed", json={"texts": ["a", "b"]}))
        await asyncio.sleep(0.1)
        await post_error(client, "/embed", 429, "queue_full", json={"texts": ["c", "d"]})
        await post_error(client, "/embed", 413, "too_many_inputs", json={"texts": list("abcd")})
        assert (await first).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert metric(metrics, "sutra_rejected_requests_total", reason="embed_queue_full") == 1
    run(go, ServerConfig(max_queue=3, batch_wait_ms=500, embed_cache_size=0), embedder=embedder)


_SUTRA_NAMES = {"input": "texts", "dimensions": "target_dimension"}


@pytest.mark.parametrize("body", [
    None, 0, "s", [], {"input": None}, {"input": {"a": 1}}, {"input": [None]}, {"input": [[1]]},
    {"input": "x", "dimensions": -1}, {"input": "x", "dimensions": 1.5},
    {"input": "x", "dimensions": True}, {"input": "x", "model": 7},
    {"input": "x", "auto_truncate": "no"}, {"input": "\ud800"},
])
def test_bad_embedding_input_never_500(embedder, body):
    async def go(client):
        for path in ("/v1/embeddings", "/embed"):
            b = body if not isinstance(body, dict) or path == "/v1/embeddings" else \
                {_SUTRA_NAMES.get(k, k): v for k, v in body.items()}
            resp = await client.post(path, json=b)
            got = await resp.json()
            assert 400 <= resp.status < 500, (path, b, got)
            assert set(got) == {"error"}
    run(go, embedder=embedder)


def test_a_failing_model_call_is_a_500_envelope_and_the_batcher_survives(embedder):
    class FlakyEmbedder:
        """The real embedder, but its first call fails like a broken ORT session."""

        def __init__(self, real):
            self.real, self.failed = real, False
            self.model_id, self.dimension = real.model_id, real.dimension
            self.max_length, self.tokenizer = real.max_length, real.tokenizer

        def embed(self, texts, **kw):
            if not self.failed:
                self.failed = True
                raise RuntimeError("simulated ONNX Runtime failure")
            return self.real.embed(texts, **kw)

    async def go(client):
        err = await post_error(client, "/embed", 500, "internal_error", json={"texts": ["a"]})
        assert "simulated" not in err["message"]  # internals stay in the server log
        resp = await client.post("/embed", json={"texts": ["a"]})
        assert resp.status == 200
    run(go, embedder=FlakyEmbedder(embedder))
