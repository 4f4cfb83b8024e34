"""One generation run in a worker thread, its text pieces handed to the event loop.

The compiled forward pass releases the GIL, so decoding in a thread leaves the
loop free. A client that goes away (a failed write, or aiohttp cancelling the
handler) cancels the stream: decoding stops before the next token, and a long
prompt after the 512-token chunk being processed.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sutra_fast.server.errors import ApiError

_PIECE, _END, _ERROR = 0, 1, 2


class Limiter:
    """At most ``limit`` generations at once; beyond that a 429 right away."""

    def __init__(self, limit: int, retry_after: int, metrics):
        self.limit, self.retry_after, self.metrics = limit, retry_after, metrics
        self.active = 0

    def acquire(self) -> None:
        if self.active >= self.limit:
            self.metrics.rejected.labels("generation_limit").inc()
            raise ApiError(429, f"{self.active} generations are running, the limit of this "
                                f"server (--max-concurrent-generations {self.limit}); retry later",
                           "too_many_generations", retry_after=self.retry_after)
        self.active += 1
        self.metrics.generations_active.set(self.active)

    def release(self) -> None:
        self.active -= 1
        self.metrics.generations_active.set(self.active)


class Generation:
    """Async iterator of text pieces; ``result`` is the GenerationResult at the end."""

    def __init__(self, stream, executor: ThreadPoolExecutor, metrics, t_request: float):
        self._stream = stream
        self._metrics = metrics
        self._t_request = t_request
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._done = False
        self.result = None
        self.t_first = None
        self._future = self._loop.run_in_executor(executor, self._work)

    def _post(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody is listening any more
            self._stream.cancel()

    def _work(self) -> None:
        stream = self._stream
        try:
            for piece in stream:  # ends early once cancel() has reached the stream
                self._post((_PIECE, piece))
            stream.close()  # no-op after a natural end; stops decoding otherwise
            self._post((_END, stream.result))
        except Exception as e:  # noqa: BLE001 - re-raised on the loop
            stream.close()
            self._post((_ERROR, e))

    def cancel(self) -> None:
        if not self._done:
            self._stream.cancel()
            self._metrics.cancelled.inc()

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        kind, value = await self._queue.get()
        if kind == _PIECE:
            if self.t_first is None:
                self.t_first = time.perf_counter()
                self._metrics.ttft.observe(self.t_first - self._t_request)
            return value
        self._done = True
        if kind == _ERROR:
            raise ApiError(500, f"generation failed: {type(value).__name__}", "generation_failed")
        self.result = value
        self._account(value)
        raise StopAsyncIteration

    def _account(self, r) -> None:
        n = r.usage["completion_tokens"]
        self._metrics.generated_tokens.inc(n)
        self._metrics.prompt_tokens.inc(r.usage["prompt_tokens"])
        if n > 1 and r.timing.get("time_to_first_token_s") is not None:
            # ttft counts from the stream's start (prefill included)
            decode_after_first = r.timing["total_s"] - r.timing["time_to_first_token_s"]
            self._metrics.tpot.observe(max(decode_after_first, 0.0) / (n - 1))

    async def wait_closed(self) -> None:
        """Wait until the worker thread has stopped (after ``cancel``)."""
        try:
            await asyncio.shield(self._future)
        except Exception:  # noqa: BLE001 - already reported through the queue
            pass
        if not self._done and self._stream.result is not None:
            self._done = True
            self._account(self._stream.result)  # the tokens it did make still count
