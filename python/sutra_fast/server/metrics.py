"""Prometheus metrics (``sutra_`` prefix), one registry per app so that several
apps (tests) never share counters."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("sutra_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("sutra_request_duration_seconds",
                                 "time to the complete response, by route", ["route"],
                                 buckets=_LATENCY, registry=r)
        self.queue_texts = Gauge("sutra_embed_queue_texts",
                                 "texts waiting for the embedding batcher", registry=r)
        self.batch_size = Histogram("sutra_embed_batch_size", "texts per model call",
                                    buckets=_SIZES, registry=r)
        self.batch_tokens = Histogram("sutra_embed_batch_tokens", "tokens per model call",
                                      buckets=_TOKENS, registry=r)
        self.batch_requests = Histogram("sutra_embed_batch_requests",
                                        "requests served by one model call", buckets=_SIZES,
                                        registry=r)
        self.embedded_texts = Counter("sutra_embed_texts", "texts embedded by the model",
                                      registry=r)
        self.cache_hits = Counter("sutra_embed_cache_hits", "texts answered from the cache",
                                  registry=r)
        self.cache_misses = Counter("sutra_embed_cache_misses", "texts not in the cache",
                                    registry=r)
        self.rejected = Counter("sutra_rejected_requests",
                                "requests turned away for load (429/503)", ["reason"], registry=r)
        self.generations_active = Gauge("sutra_generations_active", "generations running",
                                        registry=r)
        self.generated_tokens = Counter("sutra_generated_tokens", "tokens generated", registry=r)
        self.prompt_tokens = Counter("sutra_prompt_tokens", "prompt tokens processed", registry=r)
        self.ttft = Histogram("sutra_time_to_first_token_seconds",
                              "request start to the first generated token", buckets=_LATENCY,
                              registry=r)
        self.tpot = Histogram("sutra_time_per_output_token_seconds",
                              "decode time per generated token after the first",
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
                              registry=r)
        self.cancelled = Counter("sutra_generations_cancelled",
                                 "generations stopped because the client went away", registry=r)
        self.model_loaded = Gauge("sutra_model_loaded", "1 when the model is ready", ["kind"],
                                  registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
