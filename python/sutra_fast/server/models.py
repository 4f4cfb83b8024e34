"""The loaded models and their loading state (the server answers while they load)."""
from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Optional

from sutra_fast.server.errors import ApiError

log = logging.getLogger("sutra_fast.server")


class Slot:
    """One model: ``disabled`` (not configured), ``loading``, ``ready`` or ``failed``."""

    def __init__(self, kind: str, configured: bool):
        self.kind = kind
        self.state = "loading" if configured else "disabled"
        self.model = None
        self.model_id: Optional[str] = None
        self.error: Optional[str] = None

    def set(self, model, model_id: str) -> None:
        self.model, self.model_id, self.state = model, model_id, "ready"

    def require(self, retry_after: int):
        """The model, or the 503 that explains why there is none."""
        if self.state == "ready":
            return self.model
        if self.state == "loading":
            raise ApiError(503, f"the {self.kind} model is still loading; retry shortly",
                           "model_loading", retry_after=retry_after)
        if self.state == "failed":
            raise ApiError(503, f"the {self.kind} model failed to load: {self.error}",
                           "model_unavailable")
        hint = ("start the server with --rwkv-model PATH (or SUTRA_RWKV_MODEL)"
                if self.kind == "generation" else "start the server with --embeddings 1")
        raise ApiError(503, f"no {self.kind} model is loaded on this server; {hint}",
                       "model_not_loaded")

    def check_name(self, name) -> None:
        """``model`` may be omitted, 'default', or the loaded id, with or without its
        organisation ('all-MiniLM-L6-v2' for 'sentence-transformers/all-MiniLM-L6-v2',
        as Embedder.load takes it); anything else is a 404."""
        if name is None or name == "default" or name == self.model_id:
            return
        if self.model_id and isinstance(name, str) and "/" in self.model_id \
                and name == self.model_id.rsplit("/", 1)[1]:
            return
        if not isinstance(name, str):
            raise ApiError(422, "'model' must be a string", "invalid_value", param="model")
        available = [self.model_id] if self.model_id else []
        raise ApiError(404, f"model {name!r} not found; available {self.kind} models: "
                            f"{', '.join(available + ['default']) if available else 'none'}",
                       "model_not_found", param="model")


class Models:
    def __init__(self, config, embedder=None, generator=None):
        self.config = config
        # set at shutdown: a load waiting for another process's conversion lock gives up
        # (default_model.lock_wait_abort), so the exit does not wait for that process
        self.abort = threading.Event()
        self.embed = Slot("embedding", config.embeddings or embedder is not None)
        self.generate = Slot("generation", bool(config.rwkv_model) or generator is not None)
        if embedder is not None:
            self.embed.set(embedder, embedder.model_id)
        if generator is not None:
            self.generate.set(generator, self._rwkv_id(getattr(generator, "path", None)))

    def _rwkv_id(self, path) -> str:
        if self.config.rwkv_model_id:
            return self.config.rwkv_model_id
        return Path(path).stem if path else "rwkv"

    @property
    def ready(self) -> bool:
        return all(s.state in ("ready", "disabled") for s in (self.embed, self.generate))

    @property
    def failed(self) -> bool:
        return "failed" in (self.embed.state, self.generate.state)

    async def load(self) -> None:
        """Load what is configured and not given, one after the other, off the loop."""
        from sutra_fast.default_model import lock_wait_abort

        lock_wait_abort.set(self.abort)  # this task's context; to_thread passes it on
        cfg = self.config
        if self.embed.state == "loading":
            try:
                from sutra_fast.embedder import Embedder

                emb = await asyncio.to_thread(lambda: Embedder.load(
                    cfg.embed_model, quantize=cfg.embed_quantize, threads=cfg.embed_threads))
                self.embed.set(emb, emb.model_id)
                log.info("embedding model %s ready (dimension %d)", emb.model_id, emb.dimension)
            except Exception as e:  # noqa: BLE001 - reported by /health and the routes
                self.embed.state, self.embed.error = "failed", f"{type(e).__name__}: {e}"
                log.error("embedding model failed to load: %s", self.embed.error)
        if self.generate.state == "loading":
            try:
                from sutra_fast.generator import Generator

                gen = await asyncio.to_thread(lambda: Generator.load(
                    cfg.rwkv_model, dtype=cfg.rwkv_dtype))
                if cfg.rwkv_prompt_cache:
                    gen.enable_prompt_cache(cfg.rwkv_prompt_cache)
                self.generate.set(gen, self._rwkv_id(cfg.rwkv_model))
                log.info("RWKV model %s ready", self.generate.model_id)
            except Exception as e:  # noqa: BLE001
                self.generate.state, self.generate.error = "failed", f"{type(e).__name__}: {e}"
                log.error("RWKV model failed to load: %s", self.generate.error)
