"""Server: completion, chat and /generate routes, real streaming, cancellation, limits."""
from __future__ import annotations

import asyncio
import json

import pytest

from server_helpers import (GatedGenerator, generator, metric, post_error, run,  # noqa: F401
                            sse_events, world_ckpt)
from scripted_generator import ScriptedGenerator
from sutra_fast.generation import CHAT_STOP, chat_prompt
from sutra_fast.server import ServerConfig
from sutra_fast.server import keys as K

OPTS = {"max_tokens": 12, "temperature": 0.8, "top_p": 0.9, "seed": 7}


def _expected(gen, prompt, **kw):
    args = dict(max_tokens=OPTS["max_tokens"], temperature=OPTS["temperature"], top_p=OPTS["top_p"],
                seed=OPTS["seed"])
    args.update(kw)
    return gen.generate(prompt, **args)


def test_completions_shape_and_text(generator):
    async def go(client):
        resp = await client.post("/v1/completions", json={"prompt": "Hello", "model": "default", **OPTS})
        assert resp.status == 200
        return await resp.json()
    body = run(go, generator=generator)
    ref = _expected(generator, "Hello")
    # The OpenAI SDK's Completion: id, object, created, model, choices[{text, index, logprobs,
    # finish_reason}], usage{prompt_tokens, completion_tokens, total_tokens}
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert isinstance(body["created"], int) and body["model"] == generator.path.stem
    (choice,) = body["choices"]
    assert choice == {"index": 0, "text": ref.text, "logprobs": None,
                      "finish_reason": ref.finish_reason}
    assert body["usage"] == ref.usage


def test_completions_stream_sse_with_usage(generator):
    async def go(client):
        resp = await client.post("/v1/completions", json={
            "prompt": "Hello", "stream": True, "stream_options": {"include_usage": True}, **OPTS})
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers.get("X-Request-ID")
        return [e async for e in sse_events(resp)]
    events = run(go, generator=generator)
    ref = _expected(generator, "Hello")
    assert events[-1] == "[DONE]"
    chunks, usage = events[:-2], events[-2]
    assert usage["choices"] == [] and usage["usage"] == ref.usage
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    assert len({c["id"] for c in events[:-1]}) == 1
    assert "".join(c["choices"][0]["text"] for c in chunks) == ref.text
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + [ref.finish_reason]
    assert len(chunks) > 2  # token by token, not one lump


def test_chat_completions_plain_and_streamed(generator):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]
    plain_messages = [messages[0], {"role": "user", "content": "Hi there"}]
    ref = _expected(generator, chat_prompt(plain_messages), stop=[CHAT_STOP])

    async def go(client):
        plain = await (await client.post("/v1/chat/completions",
                                          json={"messages": messages, **OPTS})).json()
        resp = await client.post("/v1/chat/completions",
                                 json={"messages": messages, "stream": True, **OPTS})
        return plain, [e async for e in sse_events(resp)]
    plain, events = run(go, generator=generator)
    assert plain["object"] == "chat.completion" and plain["id"].startswith("chatcmpl-")
    (choice,) = plain["choices"]
    assert choice["message"] == {"role": "assistant", "content": ref.text}
    assert choice["finish_reason"] == ref.finish_reason and choice["index"] == 0
    assert plain["usage"] == ref.usage
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == ref.finish_reason
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == ref.text


def test_generate_plain_and_ndjson_stream(generator):
    ref = _expected(generator, "Once upon", stop=["\n\n"])

    async def go(client):
        body = {"prompt": "Once upon", "stop_sequences": ["\n\n"], **OPTS}
        plain = await (await client.post("/generate", json=body)).json()
        resp = await client.post("/generate", json={**body, "stream": True})
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in resp.content]
        return plain, lines
    plain, lines = run(go, generator=generator)
    assert plain["text"] == ref.text and plain["tokens_used"] == len(ref.tokens)
    assert plain["model_used"] == generator.path.stem and plain["generation_time"] > 0
    assert all(not ln["done"] for ln in lines[:-1]) and lines[-1]["done"]
    assert "".join(ln["token"] for ln in lines[:-1]) == ref.text == lines[-1]["text"]
    assert lines[-1]["tokens_used"] == len(ref.tokens)


def test_chunks_arrive_before_the_generation_ends(generator):
    gated = GatedGenerator(generator, free=4)  # prefill + 3 tokens, then waits for the test

    async def go(client):
        resp = await client.post("/generate", json={"prompt": "Hi", "stream": True,
                                                    "max_tokens": 20, "temperature": 0})
        first = json.loads(await resp.content.readline())
        # The generation cannot have finished: it is parked inside forward().
        assert first["done"] is False and first["token"]
        assert not gated.gate.is_set()
        gated.gate.set()
        rest = [json.loads(line) async for line in resp.content]
        return first, rest
    first, rest = run(go, generator=gated)
    assert rest[-1]["done"] and rest[-1]["text"].startswith(first["token"])


@pytest.mark.parametrize("path,body", [
    ("/generate", {"prompt": "Hi", "stream": True}),
    ("/v1/completions", {"prompt": "Hi", "stream": True}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "stream": True}),
    ("/v1/completions", {"prompt": "Hi"}),  # not streamed: the handler is cancelled
])
def test_disconnect_stops_the_generation(generator, path, body):
    gated = GatedGenerator(generator, free=3)

    async def go(client):
        app = client.server.app
        task = asyncio.ensure_future(client.post(path, json={**body, "max_tokens": 1000,
                                                             "temperature": 0}))
        if body.get("stream"):
            resp = await task
            await resp.content.readline()  # something arrived: the generation runs
            resp.close()  # drop the connection
        else:
            while gated.calls < 3:
                await asyncio.sleep(0.01)
            task.cancel()  # the client gives up and closes the connection
            with pytest.raises(asyncio.CancelledError):
                await task
        limiter = app[K.LIMITER]
        for _ in range(200):  # the server notices the closed connection
            if gated.calls > 0 and not gated.gate.is_set() and _cancelled(app):
                break
            await asyncio.sleep(0.01)
        calls_at_cancel = gated.calls
        gated.gate.set()
        for _ in range(300):
            if limiter.active == 0:
                break
            await asyncio.sleep(0.01)
        assert limiter.active == 0
        return calls_at_cancel, gated.calls
    at_cancel, total = run(go, generator=gated)
    assert total <= at_cancel + 1, f"{total - at_cancel} forward calls after the disconnect"


def test_chat_route_stops_at_the_next_user_turn(generator):
    """A model that writes the next user turn itself: the chat route cuts it,
    plain and streamed; the completions route does not."""
    script = generator.tokenizer.encode(" Hello there\n\nUser: and more") + [0]
    msgs = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0, "max_tokens": 50}

    async def go(client):
        plain = await (await client.post("/v1/chat/completions", json=msgs)).json()
        resp = await client.post("/v1/chat/completions", json={**msgs, "stream": True})
        events = [e async for e in sse_events(resp)]
        completion = await (await client.post("/v1/completions", json={
            "prompt": "x", "temperature": 0, "max_tokens": 50})).json()
        return plain, events, completion
    plain, events, completion = run(go, ServerConfig(embeddings=False, rwkv_prompt_cache=0),
                                    generator=ScriptedGenerator(generator, script))
    assert plain["choices"][0]["message"]["content"] == " Hello there"
    assert plain["choices"][0]["finish_reason"] == "stop"
    streamed = "".join(e["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if e["choices"])
    assert streamed == " Hello there" and events[-1] == "[DONE]"
    assert completion["choices"][0]["text"] == " Hello there\n\nUser: and more"


def test_disconnect_during_a_long_prompt_frees_the_slot_after_its_chunk(generator):
    """A 3-chunk prompt whose client leaves while chunk 2 is in forward(): chunk 3
    and the decode never run, so the generation slot comes back at once."""
    from sutra_fast.generation import PREFILL_CHUNK
    gated = GatedGenerator(generator, free=1)   # chunk 1 runs, chunk 2 waits for the gate
    prompt = [(i % 200) + 1 for i in range(2 * PREFILL_CHUNK + 10)]

    async def go(client):
        app = client.server.app
        task = asyncio.ensure_future(client.post("/v1/completions", json={
            "prompt": prompt, "max_tokens": 5, "temperature": 0}))
        while gated.calls < 2:
            await asyncio.sleep(0.01)
        task.cancel()  # the client gives up while its prompt is being read
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if _cancelled(app):
                break
            await asyncio.sleep(0.01)
        assert _cancelled(app)
        gated.gate.set()
        for _ in range(300):
            if app[K.LIMITER].active == 0:
                break
            await asyncio.sleep(0.01)
        assert app[K.LIMITER].active == 0
        return gated.calls
    assert run(go, ServerConfig(embeddings=False), generator=gated) == 2


def test_cancelled_generations_still_count_their_tokens(generator):
    gated = GatedGenerator(generator, free=4)   # prefill + 3 tokens, then waits

    async def go(client):
        app = client.server.app
        resp = await client.post("/generate", json={"prompt": "Hi", "stream": True,
                                                    "max_tokens": 50, "temperature": 0})
        await resp.content.readline()
        while gated.calls < 5:
            await asyncio.sleep(0.01)
        resp.close()
        for _ in range(200):
            if _cancelled(app):
                break
            await asyncio.sleep(0.01)
        gated.gate.set()
        for _ in range(300):
            if app[K.LIMITER].active == 0:
                break
            await asyncio.sleep(0.01)
        return (await (await client.get("/metrics")).text()), gated.calls
    text, calls = run(go, ServerConfig(embeddings=False), generator=gated)
    # every forward call after the prefill fed back one generated token
    assert metric(text, "sutra_generated_tokens_total") == calls - 1 >= 4
    assert metric(text, "sutra_prompt_tokens_total") == len(generator.tokenizer.encode("Hi"))


def test_max_completion_tokens_null_means_not_given(generator):
    async def go(client):
        usage = []
        for extra in ({"max_completion_tokens": None}, {"max_completion_tokens": 2},
                      {"max_tokens": None, "max_completion_tokens": 2}):
            resp = await client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                "temperature": 0, **extra})
            assert resp.status == 200, await resp.text()
            usage.append((await resp.json())["usage"]["completion_tokens"])
        return usage
    want = generator.chat([{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0)
    want2 = generator.chat([{"role": "user", "content": "Hi"}], max_tokens=2, temperature=0)
    assert (len(want.tokens), len(want2.tokens)) == (3, 2)  # else the test could not tell
    assert run(go, ServerConfig(embeddings=False), generator=generator) == [
        len(want.tokens), len(want2.tokens), len(want2.tokens)]


def _cancelled(app) -> bool:
    return metric(app[K.METRICS].render()[0].decode(), "sutra_generations_cancelled_total") >= 1


def test_generation_limit_answers_429(generator):
    gated = GatedGenerator(generator, free=2)

    async def go(client):
        # greedy: the first token is a whole character, so a line arrives before the gate
        first = await client.post("/generate", json={"prompt": "Hi", "stream": True,
                                                     "max_tokens": 5, "temperature": 0})
        await first.content.readline()
        await post_error(client, "/v1/completions", 429, "too_many_generations",
                         json={"prompt": "x"})
        gated.gate.set()
        assert (await first.read())
        ok = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
        assert ok.status == 200
    run(go, ServerConfig(embeddings=False, max_concurrent_generations=1), generator=gated)


def test_generation_errors(generator):
    async def go(client):
        await post_error(client, "/v1/completions", 422, "invalid_value", json={})
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": "x", "temperature": "hot"})
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": "x", "top_p": 1.5})
        err = await post_error(client, "/v1/completions", 422, "invalid_value",
                               json={"prompt": "x", "top_k": 1e20})
        assert err["param"] == "top_k"
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": "x", "max_tokens": 10**6})
        await post_error(client, "/v1/completions", 422, "invalid_value", json={"prompt": "x", "n": 2})
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": ["a", "b"]})
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": [1, 70000]})
        await post_error(client, "/v1/completions", 413, "prompt_too_long",
                         json={"prompt": "word " * 100})
        await post_error(client, "/v1/completions", 422, "invalid_value",
                         json={"prompt": "x", "stop": [1]})
        await post_error(client, "/v1/chat/completions", 400, "empty_input", json={"messages": []})
        await post_error(client, "/v1/chat/completions", 422, "invalid_value",
                         json={"messages": [{"role": "robot", "content": "x"}]})
        await post_error(client, "/v1/chat/completions", 422, "invalid_value",
                         json={"messages": [{"role": "user", "content": 5}]})
        await post_error(client, "/generate", 422, "invalid_value", json={"prompt": 5})
        await post_error(client, "/generate", 400, "invalid_json", data=b"[1,")
        err = await post_error(client, "/v1/completions", 404, "model_not_found",
                               json={"prompt": "x", "model": "gpt-4"})
        assert generator.path.stem in err["message"]
        # token-id prompts work
        ok = await client.post("/v1/completions", json={"prompt": [1, 2, 3], "max_tokens": 2})
        assert ok.status == 200 and (await ok.json())["usage"]["prompt_tokens"] == 3
    run(go, ServerConfig(embeddings=False, max_prompt_tokens=50), generator=generator)


def test_generation_routes_503_without_a_model():
    async def go(client):
        for path, body in (("/v1/completions", {"prompt": "x"}), ("/generate", {"prompt": "x"}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})):
            err = await post_error(client, path, 503, "model_not_loaded", json=body)
            assert "--rwkv-model" in err["message"]
    run(go, ServerConfig(embeddings=False))


def test_generation_metrics(generator):
    async def go(client):
        await client.post("/generate", json={"prompt": "Hi", "max_tokens": 6, "temperature": 0})
        return await (await client.get("/metrics")).text()
    text = run(go, generator=generator)
    ref = generator.generate("Hi", max_tokens=6, temperature=0)
    assert metric(text, "sutra_generated_tokens_total") == len(ref.tokens)
    assert metric(text, "sutra_prompt_tokens_total") == ref.usage["prompt_tokens"]
    assert metric(text, "sutra_time_to_first_token_seconds_count") == 1
    assert metric(text, "sutra_time_per_output_token_seconds_count") == 1
    assert metric(text, "sutra_requests_total", route="/generate", method="POST", status="200") == 1
