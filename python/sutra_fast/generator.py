"""RWKV generation: load a checkpoint into the compiled core and step it.

    gen = Generator.load("model.pth", dtype="fp32")    # or .safetensors; "bf16" | "int8"
    state = gen.new_state()
    logits = gen.forward([1, 2, 3], state)              # float32 [vocab]; state updated in place

    out = gen.generate("The capital of France is", max_tokens=32, temperature=0)
    for piece in gen.stream("Once upon a time", max_tokens=64, seed=1): print(piece, end="")
    gen.chat([{"role": "user", "content": "Hi!"}]).text
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable, Literal, overload

import numpy as np

from sutra_fast import _core
from sutra_fast._checks import check_int
from sutra_fast.generation import (CHAT_STOP, GenerationResult, PromptCache, TokenStream,
                                   chat_prompt, checked_token_ids, is_token, normalize_stop,
                                   prompt_to_ids)
from sutra_fast.rwkv_loader import RwkvConfig, detect_config, read_checkpoint
from sutra_fast.sampler import Sampler
from sutra_fast.world_tokenizer import WorldTokenizer

__all__ = ["Generator", "RwkvState"]

_DTYPES = ("fp32", "bf16", "int8")


class RwkvState:
    """Recurrent state of one sequence: three float32 arrays, owned by Python.

    ``att_x_prev`` [L, C], ``att_kv`` [L, H, N, N], ``ffn_x_prev`` [L, C] — the
    layout of the ``rwkv`` package's state. Copy it to branch a sequence (prompt
    caching); serialise with :meth:`to_numpy` / :meth:`from_numpy`. One thread
    at a time may advance a state: a second one gets a RuntimeError instead of
    a silently mixed state.
    """

    __slots__ = ("att_x_prev", "att_kv", "ffn_x_prev", "_busy")
    _FIELDS = ("att_x_prev", "att_kv", "ffn_x_prev")

    def __init__(self, att_x_prev: np.ndarray, att_kv: np.ndarray, ffn_x_prev: np.ndarray):
        self.att_x_prev = att_x_prev
        self.att_kv = att_kv
        self.ffn_x_prev = ffn_x_prev
        self._busy = threading.Lock()  # held while a forward pass updates the arrays

    def __reduce__(self):  # pickle the arrays, not the lock
        return (RwkvState, (self.att_x_prev, self.att_kv, self.ffn_x_prev))

    def copy(self) -> "RwkvState":
        return RwkvState(self.att_x_prev.copy(), self.att_kv.copy(), self.ffn_x_prev.copy())

    __copy__ = copy

    def __deepcopy__(self, memo) -> "RwkvState":
        return self.copy()

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Copies of the three arrays, by name (e.g. for ``np.savez``)."""
        return {name: getattr(self, name).copy() for name in self._FIELDS}

    @classmethod
    def from_numpy(cls, arrays) -> "RwkvState":
        """Build a state from a mapping with the three arrays (copied to float32)."""
        try:
            parts = [np.array(arrays[name], dtype=np.float32, order="C", copy=True)
                     for name in cls._FIELDS]
        except KeyError as e:
            raise ValueError(f"state arrays must include {e.args[0]!r}") from None
        return cls(*parts)

    def __repr__(self) -> str:
        L, H, N, _ = self.att_kv.shape
        return f"RwkvState(layers={L}, heads={H}, head_size={N})"


def _check_state(state) -> None:
    """TypeError unless ``state`` is an RwkvState whose three fields are numpy
    arrays (their dtype and shape are checked by the compiled core)."""
    if not isinstance(state, RwkvState):
        raise TypeError(f"state must be an RwkvState (from new_state()), got {type(state).__name__}")
    for name in RwkvState._FIELDS:
        value = getattr(state, name, None)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"state.{name} must be a float32 numpy array (as new_state() makes), "
                            f"got {type(value).__name__}")


class Generator:
    """An RWKV model loaded into the compiled core (RWKV-7 "x070")."""

    def __init__(self, model: "_core.Rwkv7Model", config: RwkvConfig, path: Path):
        self._model = model
        self._config = config
        self.path = path
        self._world: WorldTokenizer | None = None  # loaded on first text use
        self.prompt_cache: PromptCache | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, dtype: str = "fp32", threads: int | None = None) -> "Generator":
        """Load a ``.pth`` (torch zip) or ``.safetensors`` RWKV-7 checkpoint, without torch.

        Arguments:
            path: the checkpoint file.
            dtype: weight precision, ``"fp32"``, ``"bf16"`` or ``"int8"`` (state,
                decay and the recurrence stay float32 in every mode; ``"int8"``
                quantises the layers' matrices and keeps the output head at bf16).
            threads: at most this many threads per call, 1 to 1024 (sutra_fast._core.MAX_NUM_THREADS;
                None = all of the pool).

        Raises:
            FileNotFoundError: no such file, or a folder (the message names the
                checkpoint files inside it).
            ValueError: not an RWKV-7 checkpoint, corrupt/truncated file, bad dtype.
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if threads is not None:
            cap = _core.MAX_NUM_THREADS
            if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
                raise ValueError(f"threads must be None or an int in [1, {cap}], got {threads!r}")
            threads = int(threads)
            if not 1 <= threads <= cap:
                raise ValueError(f"threads must be None or an int in [1, {cap}] (the cap on "
                                 f"threads for compiled calls), got {threads}")
        path = Path(path)
        ckpt = read_checkpoint(path)
        config = detect_config(ckpt.tensors, source=str(path))
        arrays = {}
        for name, t in ckpt.tensors.items():
            data = t.data if t.dtype != "fp16" else t.data.astype(np.float32)
            arr = np.ascontiguousarray(data)
            # A zip member need not start at an aligned offset (torch aligns its
            # own files; other zip writers do not): the core reads uint16/float32
            # words, so give it aligned memory (misaligned loads are UB).
            arrays[name] = arr if arr.flags.aligned else arr.copy()
        model = _core.Rwkv7Model(arrays, dtype, 0 if threads is None else threads)
        del arrays, ckpt  # the core holds its own copy; drop the file mapping
        return cls(model, config, path)

    # ---- sizes
    @property
    def version(self) -> str:
        return self._config.version

    @property
    def n_layer(self) -> int:
        return self._model.n_layer

    @property
    def n_embd(self) -> int:
        return self._model.n_embd

    @property
    def n_head(self) -> int:
        return self._model.n_head

    @property
    def head_size(self) -> int:
        return self._model.head_size

    @property
    def vocab_size(self) -> int:
        return self._model.vocab_size

    @property
    def dtype(self) -> str:
        return self._model.dtype

    @property
    def config(self) -> RwkvConfig:
        return self._config

    @property
    def decode_bytes(self) -> int:
        """Bytes of weights read per decoded token (for GB/s figures)."""
        return self._model.decode_bytes

    # ---- stepping
    def new_state(self) -> RwkvState:
        """A zero state (the start of a sequence)."""
        L, C, H, N = self.n_layer, self.n_embd, self.n_head, self.head_size
        return RwkvState(np.zeros((L, C), np.float32), np.zeros((L, H, N, N), np.float32),
                         np.zeros((L, C), np.float32))

    def forward(self, token_ids: int | Iterable[int] | np.ndarray, state: RwkvState) -> np.ndarray:
        """Feed tokens (one id or a sequence; more than one is a batched prefill),
        update ``state`` in place and return the float32 [vocab] logits after the last.

        Raises:
            ValueError: no tokens, non-integer ids, ids outside [0, vocab_size),
                or a state of another model's shape.
        """
        _check_state(state)
        if isinstance(token_ids, np.ndarray):
            ids = token_ids
            if ids.ndim != 1:
                raise ValueError(f"token_ids must be an int or a 1-D sequence of ints, got shape {ids.shape}")
            if ids.size == 0:
                raise ValueError("token_ids must hold at least one token")
            if ids.dtype.kind not in "iu":
                raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
            if ids.dtype.kind == "u" and ids.max() > np.iinfo(np.int64).max:
                raise ValueError(f"token id {ids.max()} is outside the vocabulary [0, {self.vocab_size})")
            ids = np.ascontiguousarray(ids, dtype=np.int64)
        else:
            ids = np.array(self._token_list(token_ids), dtype=np.int64)
        if not state._busy.acquire(blocking=False):
            raise RuntimeError("this state is being advanced by another thread right now; give "
                               "each thread its own state (gen.new_state() or state.copy())")
        try:
            return self._model.forward(ids, state.att_x_prev, state.att_kv, state.ffn_x_prev)
        finally:
            state._busy.release()

    def _token_list(self, token_ids) -> list[int]:
        """An int or a flat sequence of ints -> ids checked against the vocabulary
        (element by element, so a nested, ragged or huge entry is named plainly)."""
        if is_token(token_ids):
            items = [token_ids]
        elif isinstance(token_ids, (str, bytes)) or not hasattr(token_ids, "__iter__"):
            raise ValueError(f"token_ids must be an int or a 1-D sequence of ints, "
                             f"got {type(token_ids).__name__}")
        else:
            items = list(token_ids)
        if not items:
            raise ValueError("token_ids must hold at least one token")
        return checked_token_ids(items, self.vocab_size, name="token_ids", not_int=ValueError,
                                 what="token_ids must be an int or a 1-D sequence of ints",
                                 vocab="the vocabulary")

    # ---- text generation (the loop lives in sutra_fast.generation)
    def _world_vocab(self) -> WorldTokenizer:
        if self._world is None:
            self._world = WorldTokenizer.default()
        return self._world

    @property
    def tokenizer(self) -> WorldTokenizer | None:
        """The RWKV World tokenizer when this model's vocabulary covers it (real
        World checkpoints: 65536 >= 65530), else None: such a model takes token-id
        prompts only. Token bytes are always decoded with the World vocabulary."""
        world = self._world_vocab()
        return world if self.vocab_size >= world.vocab_size else None

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token (World vocabulary; id 0 and ids past it are b"")."""
        world = self._world_vocab()
        return world.token_to_bytes(token) if 0 < token < world.vocab_size else b""

    def enable_prompt_cache(self, max_entries: int = 8) -> None:
        """Keep the states after the last ``max_entries`` prompts: a prompt that
        starts with a cached one (a chat grown by a turn) feeds only the new tokens."""
        self.prompt_cache = PromptCache(max_entries)

    def stream(self, prompt, *, max_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 0.85, top_k: int = 0, min_p: float = 0.0,
               presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
               seed: int | None = None, stop=None, state: RwkvState | None = None) -> TokenStream:
        """Generate text piece by piece: ``for piece in gen.stream(...)``.

        Pieces are valid UTF-8 text as soon as it forms; a stop string is never
        shown, even in part. Decoding runs only while you iterate: breaking
        out of the loop stops it; ``.close()`` (or a ``with`` block) also
        finishes the stream, and ``stream.result`` then holds the
        :class:`GenerationResult`. Arguments as for :meth:`generate`.
        """
        max_tokens = check_int("max_tokens", max_tokens, 0)
        stop = normalize_stop(stop)
        ids = prompt_to_ids(prompt, self.tokenizer, self.vocab_size)
        if state is not None:
            _check_state(state)
        sampler = Sampler(
            self.vocab_size, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, seed=seed,
            # padding ids past the World vocabulary are never sampled
            banned_tokens=range(self._world_vocab().vocab_size, self.vocab_size))
        cache = self.prompt_cache if state is None else None  # a caller's state is not a fresh start
        return TokenStream(self, ids, max_tokens=max_tokens, sampler=sampler, stop=stop,
                           state=self.new_state() if state is None else state, cache=cache)

    def generate(self, prompt, *, max_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 0.85, top_k: int = 0, min_p: float = 0.0,
                 presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 seed: int | None = None, stop=None, state: RwkvState | None = None) -> GenerationResult:
        """Generate a completion of ``prompt``.

        Arguments:
            prompt: a str (needs :attr:`tokenizer`) or a list of token ids; an
                empty prompt starts from the end-of-text token 0.
            max_tokens: most tokens to generate (0 = only prefill).
            temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty:
                sampling, as :class:`sutra_fast.Sampler` (temperature 0 = greedy).
            seed: makes the run reproducible; None draws a fresh seed.
            stop: a str or list of non-empty str; generation ends at the first
                one, which is cut from the text (matched across token boundaries).
            state: continue from this state (updated in place) instead of a fresh one.

        Returns:
            GenerationResult: ``text``, ``tokens``, ``finish_reason`` ("stop" |
            "length"), ``usage`` (prompt/completion/total tokens), ``timing``
            (prefill, time to first token, tokens/s) and the final ``state``.

        Raises:
            ValueError / TypeError: bad prompt or parameter (the message names it).
        """
        stream = self.stream(prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                             top_k=top_k, min_p=min_p, presence_penalty=presence_penalty,
                             frequency_penalty=frequency_penalty, seed=seed, stop=stop, state=state)
        for _ in stream:
            pass
        assert stream.result is not None  # set when the stream is exhausted
        return stream.result

    @overload
    def chat(self, messages, *, stream: Literal[False] = False, **kwargs) -> GenerationResult: ...
    @overload
    def chat(self, messages, *, stream: Literal[True], **kwargs) -> TokenStream: ...
    @overload
    def chat(self, messages, *, stream: bool, **kwargs) -> GenerationResult | TokenStream: ...

    def chat(self, messages, *, stream: bool = False, **kwargs) -> GenerationResult | TokenStream:
        """Answer the last turn of ``messages`` (``[{"role": "system"|"user"|"assistant",
        "content": str}, ...]``) in the RWKV World chat format; stops at the next
        ``\n\nUser:`` (plus any ``stop`` given). Other arguments as :meth:`generate`;
        ``stream=True`` returns a :class:`TokenStream` instead."""
        kwargs["stop"] = (CHAT_STOP,) + normalize_stop(kwargs.get("stop"))
        prompt = chat_prompt(messages)
        return self.stream(prompt, **kwargs) if stream else self.generate(prompt, **kwargs)

    def __repr__(self) -> str:
        return (f"Generator(version={self.version!r}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
                f"n_head={self.n_head}, vocab_size={self.vocab_size}, dtype={self.dtype!r})")
