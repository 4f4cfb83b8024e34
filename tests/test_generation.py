"""Text generation: Generator.generate / stream / chat, the CLI, and their pieces.

Models are random-weight RWKV-7 checkpoints written by the tests (tests/rwkv_checkpoints.py):
TINY (vocab 97: token-id prompts only) and WORLD_TINY (vocab 65536, so text
prompts go through the World tokenizer). A scripted stand-in model checks the
decode loop where exact token sequences matter (multi-byte characters split
across tokens, stop strings, cancellation).
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rwkv_checkpoints as rc
from scripted_generator import ScriptedGenerator
import sutra_fast as sf
from sutra_fast.generation import PromptCache, TextAssembler, TokenStream, chat_prompt

WORLD_TINY = rc.WORLD_TINY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = rc.make_checkpoint(tmp_path_factory.mktemp("tiny"), rc.TINY, seed=3, fmt="safetensors")
    return sf.Generator.load(path)


@pytest.fixture(scope="module")
def world_path(tmp_path_factory):
    return rc.make_checkpoint(tmp_path_factory.mktemp("world"), WORLD_TINY, seed=5, fmt="pth")


@pytest.fixture(scope="module")
def world(world_path):
    return sf.Generator.load(world_path)


# ---------------------------------------------------------------- TextAssembler
def test_assembler_waits_for_whole_characters():
    a = TextAssembler()
    data = "你好é😀".encode()
    pieces = [a.push(data[i:i + 1]) for i in range(len(data))]
    assert "".join(pieces) == "你好é😀"
    assert all(p in ("", "你", "好", "é", "😀") for p in pieces)
    assert a.finish() == ""


def test_assembler_incomplete_tail_becomes_replacement_char():
    a = TextAssembler()
    assert a.push(b"ok\xe4\xbd") == "ok"
    assert a.finish() == "\ufffd"
    assert a.text == "ok\ufffd"


def test_assembler_stop_across_pushes_is_cut_and_never_shown():
    a = TextAssembler(stop=["\n\nUser:"])
    shown = [a.push(b"Hello"), a.push(b"\n"), a.push(b"\nUs"), a.push(b"er: more")]
    assert "".join(shown) == "Hello"
    assert a.stopped and a.text == "Hello"
    assert a.push(b"anything") == ""


def test_assembler_releases_a_false_start():
    a = TextAssembler(stop=["STOP"])
    assert a.push(b"ab ST") == "ab "  # "ST" could begin "STOP": held back
    assert a.push(b"AR") == "STAR"
    assert not a.stopped
    assert a.push(b" S") == " "
    assert a.finish() == "S"  # the end releases whatever was held back


def test_assembler_earliest_of_several_stops_wins():
    a = TextAssembler(stop=["xyz", "b"])
    assert a.push(b"aaxyzb") == "aa"


def test_chat_prompt_format():
    p = chat_prompt([{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": " Hi\n\n\nthere "},
                     {"role": "assistant", "content": "Hello."},
                     {"role": "user", "content": "Bye"}])
    assert p == "System: Be brief.\n\nUser: Hi\nthere\n\nAssistant: Hello.\n\nUser: Bye\n\nAssistant:"
    with pytest.raises(ValueError, match="non-empty list"):
        chat_prompt([])
    with pytest.raises(ValueError, match=r"messages\[0\]\['role'\]"):
        chat_prompt([{"role": "bot", "content": "x"}])
    with pytest.raises(TypeError, match=r"messages\[0\]\['content'\]"):
        chat_prompt([{"role": "user", "content": 3}])


# ---------------------------------------------------------------- scripted model
class ScriptedModel:
    """Emits a fixed token script under greedy sampling; counts forward calls."""

    def __init__(self, script, vocab=65536):
        self.script = list(script)
        self.vocab_size = vocab
        self.calls = 0
        self._world = sf.WorldTokenizer.default()

    def forward(self, ids, state):
        """Call k (the prefill is call 0) makes script[k] the greedy choice."""
        self.calls += 1
        logits = np.zeros(self.vocab_size, np.float32)
        logits[self.script[min(state["step"], len(self.script) - 1)]] = 10.0
        state["step"] += 1
        return logits

    def token_bytes(self, token):
        return self._world.token_to_bytes(token) if 0 < token < self._world.vocab_size else b""


def scripted_stream(script, *, max_tokens=100, stop=()):
    model = ScriptedModel(script)
    sampler = sf.Sampler(model.vocab_size, temperature=0.0, seed=0)
    stream = TokenStream(model, [1], max_tokens=max_tokens, sampler=sampler, stop=tuple(stop),
                         state={"step": 0}, cache=None)
    return model, stream


def byte_tokens(data: bytes):
    return [b + 1 for b in data]  # World vocab ids 1..256 are the single bytes 0..255


def test_stream_never_splits_a_character():
    text = "añ你😀!"
    model, stream = scripted_stream(byte_tokens(text.encode()) + [0])
    pieces = list(stream)
    assert "".join(pieces) == text
    assert pieces == ["a", "ñ", "你", "😀", "!"]
    assert stream.result.finish_reason == "stop"  # the end-of-text token
    assert stream.result.tokens == byte_tokens(text.encode())


def test_stream_stop_string_across_tokens():
    tok = sf.WorldTokenizer.default()
    script = tok.encode("The answer\n\nUser: again") + [0]
    _, stream = scripted_stream(script, stop=["\n\nUser:"])
    assert "".join(stream) == "The answer"
    assert stream.result.finish_reason == "stop"
    assert stream.result.text == "The answer"


def test_closing_a_stream_stops_decoding_at_once():
    model, stream = scripted_stream(byte_tokens(b"abcdefghijklmnopqrstuvwxyz" * 4), max_tokens=100)
    assert next(stream) == "a"
    assert next(stream) == "b"
    calls = model.calls
    stream.close()
    assert model.calls == calls
    assert list(stream) == []
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.text == "ab"


def test_cancel_from_another_thread_stops_a_long_prompt_between_chunks():
    """A 3-chunk prompt, cancelled (as by a server thread) while chunk 1 is in
    forward: chunk 2 and 3 never run, nothing is decoded, nothing is cached."""
    from sutra_fast.generation import PREFILL_CHUNK

    class CancelDuringForward(ScriptedModel):
        def forward(self, ids, state):
            if self.calls == 0:
                threading.Thread(target=stream.cancel).start()
                time.sleep(0.05)  # the other thread's cancel lands while we compute
            return super().forward(ids, state)

    model = CancelDuringForward([5] * 10)
    cache = PromptCache()
    sampler = sf.Sampler(model.vocab_size, temperature=0.0, seed=0)
    stream = TokenStream(model, [1] * (2 * PREFILL_CHUNK + 1), max_tokens=10, sampler=sampler,
                         stop=(), state={"step": 0}, cache=cache)
    assert list(stream) == []
    assert model.calls == 1
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.tokens == [] and stream.result.timing["prefilled_tokens"] == PREFILL_CHUNK
    assert len(cache) == 0  # a half-read prompt's state must never be reused


def test_cancel_stops_decoding_even_while_no_text_shows():
    """Tokens that show no text yet (part of a character, a possible stop
    string) yield no piece; a cancel must still stop the loop before the next
    forward call, not only after a piece."""
    class CancelAfterThree(ScriptedModel):
        def forward(self, ids, state):
            if self.calls == 3:
                stream.cancel()
            return super().forward(ids, state)

        def token_bytes(self, token):
            return b""  # nothing ever becomes visible

    model = CancelAfterThree([5] * 60)
    sampler = sf.Sampler(model.vocab_size, temperature=0.0, seed=0)
    stream = TokenStream(model, [1], max_tokens=50, sampler=sampler, stop=(),
                         state={"step": 0}, cache=None)
    assert list(stream) == []
    # cancel() lands in the 4th forward call (the 3rd token's); no 5th call follows
    assert model.calls == 4
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.tokens == [5] * 3


def test_stream_context_manager_closes(tiny):
    with tiny.stream([1, 2], max_tokens=50, seed=1) as s:
        next(s)
    assert s.result.finish_reason == "cancelled"
    assert s.result.usage["completion_tokens"] >= 1


# ---------------------------------------------------------------- real (random-weight) models
def test_greedy_equals_argmax_of_forward(tiny):
    prompt = [3, 4]  # greedy runs 14 varied tokens before end-of-text on this model
    out = tiny.generate(prompt, max_tokens=24, temperature=0.0)
    state = tiny.new_state()
    logits = tiny.forward(prompt, state)
    expected = []
    for _ in range(24):
        t = int(np.argmax(logits))
        if t == 0:
            break
        expected.append(t)
        logits = tiny.forward([t], state)
    assert len(set(expected)) >= 5, "a prompt whose greedy run is too short checks little"
    assert out.tokens == expected
    assert out.finish_reason == ("length" if len(expected) == 24 else "stop")
    np.testing.assert_array_equal(out.state.att_kv, state.att_kv)  # state consumed every token


def test_seeded_runs_reproduce(tiny):
    a = tiny.generate([3, 4], max_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    b = tiny.generate([3, 4], max_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    c = tiny.generate([3, 4], max_tokens=40, temperature=1.0, top_p=0.9, seed=124)
    assert a.tokens == b.tokens and a.text == b.text
    assert a.tokens != c.tokens


def test_stream_pieces_join_to_generate_text(world):
    kw = dict(max_tokens=30, temperature=0.8, seed=7)
    stream = world.stream("Once upon a time", **kw)
    joined = "".join(stream)
    assert joined == stream.result.text == world.generate("Once upon a time", **kw).text


def test_max_tokens_and_usage(world):
    r = world.generate("Hello", max_tokens=5, temperature=0.0)
    assert r.usage["prompt_tokens"] == len(world.tokenizer.encode("Hello"))
    assert r.usage["completion_tokens"] == len(r.tokens) <= 5
    assert r.finish_reason in ("length", "stop")
    assert r.timing["prefill_s"] >= 0 and r.timing["total_s"] >= r.timing["prefill_s"]
    zero = world.generate("Hello", max_tokens=0)
    assert zero.tokens == [] and zero.text == "" and zero.finish_reason == "length"


def test_stop_string_on_a_real_model(world):
    free = world.generate("The", max_tokens=40, temperature=0.0)
    assert len(free.text) > 6, free.text
    stop = free.text[3:6]
    first = free.text.find(stop)
    cut = world.generate("The", max_tokens=40, temperature=0.0, stop=[stop, "\x00never"])
    assert cut.text == free.text[:first]
    assert cut.finish_reason == "stop"


def test_padding_ids_are_never_sampled(world):
    """The model's rows past the World vocabulary (65530-65535 here) get the
    highest logits; neither greedy nor sampling may pick them."""
    padding = list(range(world.tokenizer.vocab_size, world.vocab_size))
    assert padding, "the test model must have padding rows"
    scripted = ScriptedGenerator(world, [ord("a") + 1], boost=padding)
    greedy = scripted.generate([1], max_tokens=20, temperature=0.0)
    assert greedy.tokens == [ord("a") + 1] * 20
    sampled = scripted.generate([1], max_tokens=200, temperature=5.0, top_p=1.0, seed=1)
    assert len(sampled.tokens) == 200 and not set(sampled.tokens) & set(padding)


def test_caller_state_continues(world):
    full = world.generate("abc def", max_tokens=8, temperature=0.0)
    ids = world.tokenizer.encode("abc def")
    state = world.new_state()
    world.forward(ids[:-1], state)
    cont = world.generate(ids[-1:], max_tokens=8, temperature=0.0, state=state)
    assert cont.tokens == full.tokens
    assert cont.state is state


def test_prompt_cache_reuses_prefix(world_path):
    gen = sf.Generator.load(world_path)
    plain = sf.Generator.load(world_path)
    gen.enable_prompt_cache(4)
    first = "User: hello there\n\nAssistant:"
    a = gen.generate(first, max_tokens=6, temperature=0.0)
    longer = first + a.text + "\n\nUser: and more\n\nAssistant:"
    b = gen.generate(longer, max_tokens=6, temperature=0.0)
    n_first = len(gen.tokenizer.encode(first))
    assert b.timing["prefilled_tokens"] <= len(gen.tokenizer.encode(longer)) - n_first + 1
    assert gen.prompt_cache.hits >= 1
    assert b.tokens == plain.generate(longer, max_tokens=6, temperature=0.0).tokens
    again = gen.generate(longer, max_tokens=6, temperature=0.0)
    assert again.timing["prefilled_tokens"] == 0 and again.tokens == b.tokens


def test_prompt_cache_lru_bound():
    cache = PromptCache(2)

    class S:
        def copy(self):
            return self
    for i in range(5):
        cache.put([i, i], S(), np.zeros(3, np.float32))
    assert len(cache) == 2
    assert cache.longest_prefix([4, 4, 9])[0] == 2
    assert cache.longest_prefix([0, 0]) is None


def test_chat_stops_at_next_user_turn(world):
    """A model that writes the next user turn itself: chat() cuts it off."""
    script = world.tokenizer.encode(" Hello there\n\nUser: and more") + [0]
    r = ScriptedGenerator(world, script).chat([{"role": "user", "content": "Hi"}],
                                              max_tokens=50, temperature=0.0)
    assert r.text == " Hello there" and r.finish_reason == "stop"
    assert r.usage["prompt_tokens"] == len(world.tokenizer.encode("User: Hi\n\nAssistant:"))
    plain = ScriptedGenerator(world, script).generate("x", max_tokens=50, temperature=0.0)
    assert plain.text == " Hello there\n\nUser: and more"  # generate() has no such stop


def test_text_prompt_needs_a_fitting_vocabulary(tiny):
    assert tiny.tokenizer is None
    with pytest.raises(ValueError, match=r"this model's vocabulary \(size 97\) is not the RWKV World "
                                         r"vocabulary \(65536\), so a text prompt cannot be "
                                         "tokenised; pass the prompt as a list of token ids"):
        tiny.generate("hello")


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(max_tokens=-1), ValueError, "max_tokens must be >= 0"),
    (dict(max_tokens="5"), TypeError, "max_tokens must be an int"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=float("nan")), ValueError, "temperature"),
    (dict(top_p=1.5), ValueError, "top_p"),
    (dict(top_k=-2), ValueError, "top_k"),
    (dict(stop=[1]), TypeError, r"stop\[0\] must be a str"),
    (dict(stop=5), TypeError, "stop must be a str or a list"),
    (dict(stop=""), ValueError, r"^stop is an empty string; give non-empty stop strings"),
    (dict(stop=["x", ""]), ValueError, r"^stop\[1\] is an empty string"),
    (dict(state="x"), TypeError, "state must be an RwkvState"),
])
def test_bad_parameters(tiny, kwargs, err, match):
    with pytest.raises(err, match=match):
        tiny.generate([1, 2], **kwargs)


@pytest.mark.parametrize("prompt,err,match", [
    ([1, 97], ValueError, r"token id 97 is outside"),
    ([-1], ValueError, "token id -1 is outside"),
    ([1.5, 2.0], TypeError, "flat sequence of ints"),
    (3.14, TypeError, "prompt must be a str or a list of token ids"),
])
def test_bad_prompts(tiny, prompt, err, match):
    with pytest.raises(err, match=match):
        tiny.generate(prompt)


def test_empty_prompt_starts_a_document(world):
    r = world.generate("", max_tokens=3, temperature=0.0)
    assert r.usage["prompt_tokens"] == 1
    assert r.tokens == world.generate([0], max_tokens=3, temperature=0.0).tokens


# ---------------------------------------------------------------- CLI
def run_cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "sutra_fast", "generate", *args],
                          input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_cli_generate_streams_the_same_text(world, world_path):
    r = run_cli("--model", str(world_path), "--max-tokens", "12", "--temperature", "0", "Hello")
    assert r.returncode == 0, r.stderr
    expected = world.generate("Hello", max_tokens=12, temperature=0.0).text
    assert r.stdout == expected + "\n"
    assert "tok/s" in r.stderr and "generated tokens" in r.stderr


def test_cli_generate_reads_stdin_and_reports_errors(world, world_path):
    r = run_cli("--model", str(world_path), "--max-tokens", "4", "--temperature", "0", stdin="Hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == world.generate("Hi", max_tokens=4, temperature=0.0).text + "\n"
    bad = run_cli("--model", "/no/such/model.pth", "x")
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("--model", str(world_path), "--temperature", "-3", "x")
    assert bad.returncode == 2 and "temperature" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_model_folder_says_it_is_a_folder(tmp_path, world_path):
    bad = run_cli("--model", str(world_path.parent), "x")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr == (f"sutra-fast: error: {world_path.parent} is a folder, not a checkpoint "
                          f"file; pass the .pth or .safetensors file inside it: {world_path}\n")
    (tmp_path / "out1.jsonl").write_text('{"text": "a"}\n' * 50)
    bad = run_cli("--model", str(tmp_path / "out1.jsonl"), "x")
    assert bad.returncode == 2 and "header length" not in bad.stderr
    assert bad.stderr == (f"sutra-fast: error: {tmp_path / 'out1.jsonl'} is not an RWKV checkpoint: "
                          "expected a .pth (torch zip) or .safetensors file\n")


def test_cli_text_prompt_on_a_non_world_vocabulary(tiny):
    """The library's "pass token ids" is advice a CLI user cannot follow."""
    bad = run_cli("--model", str(tiny.path), "hello")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr == (f"sutra-fast: error: {tiny.path}: the model's vocabulary (size 97) is not "
                          "the RWKV World vocabulary (65536), so text prompts cannot be tokenised; "
                          "use the Python API, where Generator.forward() and generate() take "
                          "token ids\n")


def test_cli_empty_stop_is_an_error(world_path):
    bad = run_cli("--model", str(world_path), "--stop", "\n", "--stop", "", "x")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr == ('sutra-fast: error: --stop "" is an empty stop string; pass a non-empty '
                          "one or leave --stop out\n")


def test_http_empty_stop_strings_are_dropped_by_the_server(world):
    """The library now refuses stop=[""]; the server drops empty stop strings itself
    (validate.get_stop), so such a request stays a 200, not an error."""
    from server_helpers import run as serve

    async def go(client):
        out = []
        for path, body in [("/v1/completions", {"prompt": "Hi", "stop": [""]}),
                           ("/v1/completions", {"prompt": "Hi", "stop": ""}),
                           ("/generate", {"prompt": "Hi", "stop_sequences": ["", ""]})]:
            resp = await client.post(path, json={**body, "max_tokens": 3, "temperature": 0})
            out.append((resp.status, await resp.json()))
        return out
    for status, body in serve(go, generator=world):
        assert status == 200, body


# ---------------------------------------------------------------- input validation
def _no_dump(e):
    assert "incompatible" not in str(e.value) and "inhomogeneous" not in str(e.value)


@pytest.mark.parametrize("top_k", [2**70, 2**63, 97, np.int64(10**12)])
def test_generate_top_k_past_the_vocabulary_is_off(tiny, top_k):
    a = tiny.generate([1, 2], max_tokens=6, top_k=top_k, seed=11)
    b = tiny.generate([1, 2], max_tokens=6, top_k=0, seed=11)
    assert a.tokens == b.tokens


@pytest.mark.parametrize("name", ["temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty"])
def test_generate_int_too_large_for_a_float_is_value_error(tiny, name):
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        tiny.generate([1], **{name: 10**400})
    with pytest.raises(ValueError, match=name):
        tiny.stream([1], **{name: -10**400})


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty"])
def test_generate_penalties_are_bounded(tiny, name):
    with pytest.raises(ValueError, match=rf"{name} must be in \[-1e\+06, 1e\+06\]"):
        tiny.generate([1], **{name: 1e30})
    assert tiny.generate([1], max_tokens=2, seed=1, **{name: 1e6}).usage["completion_tokens"] <= 2


@pytest.mark.parametrize("threads", [2**31, 2**70, 1025])
def test_load_threads_past_the_cap(world_path, threads):
    with pytest.raises(ValueError, match=r"threads must be None or an int in \[1, 1024\]") as e:
        sf.Generator.load(world_path, threads=threads)
    _no_dump(e)


def test_load_threads_numpy_int(tiny):
    g = sf.Generator.load(tiny.path, threads=np.int64(2))
    assert g.generate([1, 2], max_tokens=3, temperature=0).tokens == \
        tiny.generate([1, 2], max_tokens=3, temperature=0).tokens
    for bad in [True, np.bool_(True), 2.0, "2"]:
        with pytest.raises(ValueError, match="threads"):
            sf.Generator.load(tiny.path, threads=bad)


@pytest.mark.parametrize("field", ["att_x_prev", "att_kv", "ffn_x_prev"])
@pytest.mark.parametrize("bad", ["list", None, "abc", 3.0])
def test_damaged_state_is_type_error_naming_the_field(tiny, field, bad):
    st = tiny.new_state()
    if bad == "list":
        bad = getattr(st, field).tolist()
    setattr(st, field, bad)
    with pytest.raises(TypeError, match=f"state.{field} must be a float32 numpy array") as e:
        tiny.forward([1], st)
    _no_dump(e)
    with pytest.raises(TypeError, match=f"state.{field}"):
        tiny.generate([1], max_tokens=2, state=st)
    with pytest.raises(TypeError, match=f"state.{field}"):
        tiny.stream([1], max_tokens=2, state=st)


def test_unset_state_field_is_type_error(tiny):
    st = tiny.new_state()
    del st.att_kv
    with pytest.raises(TypeError, match="state.att_kv"):
        tiny.forward([1], st)


@pytest.mark.parametrize("prompt,err,match", [
    ([[1], [2, 3]], TypeError, r"flat sequence of ints: prompt\[0\] is a list"),
    ([1, [2, 3]], TypeError, r"flat sequence of ints: prompt\[1\] is a list"),
    ([[1, 2]], TypeError, r"prompt\[0\] is a list"),
    (np.array([[1, 2]]), TypeError, r"flat sequence of ints, got an array of shape \(1, 2\)"),
    ([1, None], TypeError, r"prompt\[1\] is a NoneType"),
    ([1, "2"], TypeError, r"prompt\[1\] is a str"),
    ([True], TypeError, r"prompt\[0\] is a bool"),
    ([np.bool_(True)], TypeError, r"prompt\[0\] is a bool"),
    ([2**70], ValueError, r"token id 1180591620717411303424 is outside the model's vocabulary \[0, 97\)"),
    ([1, 2**64], ValueError, r"token id 18446744073709551616 is outside"),
    ([-2**70], ValueError, "token id -1180591620717411303424 is outside"),
    (np.array([2**64 - 1], np.uint64), ValueError, "token id 18446744073709551615 is outside"),
    (np.array([1, 2**70], dtype=object), ValueError, "token id 1180591620717411303424 is outside"),
    ((1, 97), ValueError, "token id 97 is outside"),
])
def test_bad_prompts_checked_element_by_element(tiny, prompt, err, match):
    with pytest.raises(err, match=match) as e:
        tiny.generate(prompt, max_tokens=1)
    _no_dump(e)


def test_numpy_int_prompts_accepted(tiny):
    want = tiny.generate([1, 2, 3], max_tokens=3, temperature=0).tokens
    for prompt in [[np.int64(1), np.uint8(2), np.int32(3)], np.array([1, 2, 3], np.uint16),
                   (1, 2, 3), np.array([1, 2, 3], dtype=object)]:
        assert tiny.generate(prompt, max_tokens=3, temperature=0).tokens == want


@pytest.mark.parametrize("ids,match", [
    ([[1], [2, 3]], r"token_ids\[0\] is a list"),
    ([1, [2]], r"token_ids\[1\] is a list"),
    ([2**70], "token id 1180591620717411303424 is outside the vocabulary"),
    ([1, 2**64], "token id 18446744073709551616 is outside"),
    (2**70, "token id 1180591620717411303424 is outside"),
    ([np.bool_(True)], r"token_ids\[0\] is a bool"),
    (None, "token_ids must be an int or a 1-D sequence of ints, got NoneType"),
    ([], "at least one token"),
])
def test_forward_token_list_checked_element_by_element(tiny, ids, match):
    st = tiny.new_state()
    with pytest.raises(ValueError, match=match) as e:
        tiny.forward(ids, st)
    _no_dump(e)
    assert not st.att_kv.any()


def test_forward_numpy_int_tokens(tiny):
    a = tiny.forward([np.int64(3), np.uint8(4)], tiny.new_state())
    b = tiny.forward([3, 4], tiny.new_state())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tiny.forward(np.int32(5), tiny.new_state()),
                                  tiny.forward(5, tiny.new_state()))


def _cli(args, stdin=None, close=(), env=None):
    """Run the CLI with raw bytes; fds in ``close`` are closed in the child."""
    def pre():
        for fd in close:
            os.close(fd)
    return subprocess.run([sys.executable, "-m", "sutra_fast", "generate", *args], input=stdin,
                          env=None if env is None else {**os.environ, **env},
                          stdout=subprocess.PIPE if 1 not in close else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120, preexec_fn=pre,
                          stdin=None if stdin is not None or 0 not in close else subprocess.DEVNULL)


def test_cli_stdout_closed(world_path):
    r = _cli(["--model", str(world_path), "--max-tokens", "2", "hi"], close=(1,))
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.strip() == "sutra-fast: error: stdout is closed; redirect it to a file or a pipe"


def test_cli_stdin_closed(world_path):
    r = _cli(["--model", str(world_path), "--max-tokens", "2"], close=(0,))
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.strip() == "sutra-fast: error: stdin is closed; pass the prompt as an argument"
    # a prompt argument does not need stdin
    r = _cli(["--model", str(world_path), "--max-tokens", "2", "--temperature", "0", "hi"], close=(0,))
    assert r.returncode == 0, r.stderr.decode()


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_cli_non_utf8_prompt_says_so(world_path, locale, monkeypatch):
    monkeypatch.setenv("LC_ALL", locale)
    monkeypatch.delenv("PYTHONIOENCODING", raising=False)
    for args, stdin, source in [([], b"ab\xff\xfe", "stdin"), ([b"ab\xff"], None, "argument")]:
        r = _cli(["--model", str(world_path), "--max-tokens", "2", *args], stdin=stdin)
        err = r.stderr.decode()
        assert r.returncode == 2, err
        assert "not valid UTF-8" in err and source in err, err
        assert "encode_bytes" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_huge_top_k_and_threads(world, world_path):
    r = _cli(["--model", str(world_path), "--max-tokens", "4", "--temperature", "0",
              "--top-k", "99999999999999999999", "Hi"], env={"PYTHONIOENCODING": "utf-8"})
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == world.generate("Hi", max_tokens=4, temperature=0.0).text + "\n"
    r = _cli(["--model", str(world_path), "--threads", "99999999999999999999", "Hi"])
    err = r.stderr.decode()
    assert r.returncode == 2 and "--threads must be >= 1 and <= 1024" in err and "Traceback" not in err


def test_a_state_in_use_by_another_thread_is_refused(tiny):
    """Two threads advancing one state would silently mix it; the second gets a
    RuntimeError. Thread A parks inside its forward pass until the test lets it go."""
    gate, inside = threading.Event(), threading.Event()

    class ParkedModel:
        def __init__(self, real):
            self.real = real

        def forward(self, *args):
            inside.set()
            assert gate.wait(30)
            return self.real.forward(*args)

        def __getattr__(self, name):
            return getattr(self.real, name)

    gen = sf.Generator(ParkedModel(tiny._model), tiny._config, tiny.path)
    st = gen.new_state()
    a = threading.Thread(target=gen.forward, args=([1, 2], st))
    a.start()
    assert inside.wait(30)
    with pytest.raises(RuntimeError, match="another thread"):
        tiny.forward([3], st)
    other = tiny.new_state()
    tiny.forward([3], other)          # a state of its own is fine meanwhile
    gate.set()
    a.join(30)
    want = tiny.new_state()
    tiny.forward([1, 2], want)
    np.testing.assert_array_equal(st.att_kv, want.att_kv)  # A's pass was not disturbed
    tiny.forward([3], st)             # free again
    import pickle
    back = pickle.loads(pickle.dumps(st))
    np.testing.assert_array_equal(back.att_kv, st.att_kv)
