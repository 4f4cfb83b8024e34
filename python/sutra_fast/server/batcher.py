"""Micro-batching of embedding requests.

Requests put their uncached texts on a bounded queue. A single loop takes the
first waiting request, waits ``wait_ms`` for company, then takes whole
requests in arrival order up to a text and token budget and runs them as one
``Embedder.embed`` call in a worker thread (the compiled code and ONNX Runtime
release the GIL, so the event loop keeps serving). The model returns raw
pooled vectors; each request's own ``normalize`` / ``dimensions`` are applied
when the rows are scattered back, with the same kernels ``Embedder.embed`` uses.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from sutra_fast import kernels
from sutra_fast.server.errors import ApiError

log = logging.getLogger("sutra_fast.server")


def finish_rows(raw: np.ndarray, normalize: bool, dimensions: Optional[int]) -> np.ndarray:
    """Raw pooled rows -> what ``Embedder.embed(normalize=..., dimensions=...)`` returns."""
    if dimensions is not None and dimensions != raw.shape[1]:
        if normalize:
            return kernels.matryoshka(np.ascontiguousarray(raw), dimensions)
        return np.ascontiguousarray(raw[:, :dimensions])
    out = np.array(raw, dtype=np.float32, copy=True)
    if normalize and len(out):
        kernels.l2_normalize(out, inplace=True)
    return out


@dataclass
class _Job:
    texts: list
    tokens: int
    normalize: bool
    dimensions: Optional[int]
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, slot, metrics, executor: ThreadPoolExecutor, *, enabled: bool,
                 wait_ms: float, max_texts: int, max_tokens: int, max_queue: int,
                 retry_after: int):
        self.slot = slot  # models.embed: the embedder may still be loading at start
        self.metrics = metrics
        self.executor = executor
        self.enabled = enabled
        self.wait_s = wait_ms / 1000.0
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self._closed = False

    # -- lifecycle
    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        if self._task is not None:
            self._wake.set()
            await self._task
            self._task = None

    @property
    def queued(self) -> int:
        return self._queued

    # -- the request side
    async def embed(self, texts: list, tokens: int, normalize: bool,
                    dimensions: Optional[int]) -> np.ndarray:
        if self._closed:
            raise ApiError(503, "the server is shutting down", "shutting_down",
                           retry_after=self.retry_after)
        if len(texts) > self.max_queue:  # could never fit: not worth a retry
            raise ApiError(413, f"{len(texts)} texts to embed exceed the queue of "
                                f"{self.max_queue} texts (--max-queue); split the request",
                           "too_many_inputs")
        if self._queued + len(texts) > self.max_queue:
            self.metrics.rejected.labels("embed_queue_full").inc()
            raise ApiError(429, f"embedding queue is full ({self._queued} texts waiting, "
                                f"limit {self.max_queue}); retry later", "queue_full",
                           retry_after=self.retry_after)
        loop = asyncio.get_running_loop()
        if not self.enabled:  # one model call per request (for comparison)
            self._queued += len(texts)
            self.metrics.queue_texts.set(self._queued)
            try:
                raw = await loop.run_in_executor(self.executor, self._call, texts, tokens, 1)
            finally:
                self._queued -= len(texts)
                self.metrics.queue_texts.set(self._queued)
            return finish_rows(raw, normalize, dimensions)
        job = _Job(texts, tokens, normalize, dimensions, loop.create_future())
        self._jobs.append(job)
        self._queued += len(texts)
        self.metrics.queue_texts.set(self._queued)
        self._wake.set()
        return await job.future

    # -- the batch side
    def _call(self, texts: list, tokens: int, n_requests: int) -> np.ndarray:
        raw = self.slot.model.embed(texts, batch_size=self.max_texts, normalize=False)
        self.metrics.batch_size.observe(len(texts))
        self.metrics.batch_tokens.observe(tokens)
        self.metrics.batch_requests.observe(n_requests)
        self.metrics.embedded_texts.inc(len(texts))
        return raw

    def _take(self) -> list:
        batch, n, tok = [], 0, 0
        while self._jobs:
            job = self._jobs[0]
            if batch and (n + len(job.texts) > self.max_texts or tok + job.tokens > self.max_tokens):
                break
            self._jobs.popleft()
            if job.future.cancelled():  # the client went away while waiting
                self._queued -= len(job.texts)
                continue
            batch.append(job)
            n += len(job.texts)
            tok += job.tokens
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            n_waiting = sum(len(j.texts) for j in self._jobs)
            if self.wait_s > 0 and n_waiting < self.max_texts and not self._closed:
                await asyncio.sleep(self.wait_s)  # let concurrent requests join
            batch = self._take()
            if not batch:
                continue
            texts = [t for j in batch for t in j.texts]
            tokens = sum(j.tokens for j in batch)
            try:
                raw = await loop.run_in_executor(
                    self.executor, functools.partial(self._call, texts, tokens, len(batch)))
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                log.exception("embedding batch of %d texts failed", len(texts))
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(e)
            else:
                row = 0
                for j in batch:
                    part = raw[row: row + len(j.texts)]
                    row += len(j.texts)
                    if j.future.done():
                        continue
                    try:  # one request's failure must not stop the batcher
                        j.future.set_result(finish_rows(part, j.normalize, j.dimensions))
                    except Exception as e:  # noqa: BLE001
                        j.future.set_exception(e)
            finally:
                self._queued -= len(texts)
                self.metrics.queue_texts.set(self._queued)
