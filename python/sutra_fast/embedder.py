"""`Embedder`: text in, float32 embedding vectors out (ONNX Runtime + compiled glue).

>>> emb = Embedder.load()                 # the embedded default, all-MiniLM-L6-v2
>>> vecs = emb.embed(["a sentence", "another one"])
>>> vecs.shape, vecs.dtype
((2, 384), dtype('float32'))

Where the time goes and what we do about it: ONNX Runtime is ~97% of the
work, so texts are tokenised in one compiled call, sorted by length and cut
into batches of similar length under a token budget (padding waste is the
biggest lever), the ORT session is tuned (threads, full graph optimisation,
arena), and pooling / normalisation / Matryoshka run in compiled kernels.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from sutra_fast import kernels
from sutra_fast._checks import check_flag, check_int
from sutra_fast.model_folder import (MANIFEST, QUANTIZE_MODES, cache_suffix, hub_name_hint,
                                     read_json_object, read_manifest,
                                     sentence_transformers_settings)
from sutra_fast.wordpiece import WordPieceTokenizer

__all__ = ["Embedder"]

# At most this many tokens (rows x padded width) per ORT call. Measured on
# MiniLM, 1 thread, 2000 real sentences: budgets of 256-1024 tokens ran ~15%
# faster than plain batches of 32 (the activations stay in cache), and it
# bounds the attention buffers (rows x heads x width^2) for long texts. 512
# vs 1024: equal on 2000 sentences, 4-10% faster on the 500-sentence benchmark
# (4 interleaved rounds, fp32 and int8, on the shared 2-core machine).
TOKEN_BUDGET = 512
MAX_THREADS = 1024  # ORT starts them all at load: a typo like 10**6 would exhaust memory
# Texts tokenised and length-sorted together; bounds memory for huge inputs.
_CHUNK = 8192
_POOL = {"mean": kernels.mean_pool, "cls": kernels.cls_pool, "max": kernels.max_pool}


def _find_onnx(folder: Path) -> Optional[Path]:
    for rel in ("model.onnx", "onnx/model.onnx"):
        if (folder / rel).is_file():
            return folder / rel
    return None


def _convert_into_cache(folder: Path, quantize: Optional[str]) -> Path:
    """Convert a HF folder (safetensors) on first use, cached by path and file stamps.

    The entry is named ``<folder name>-<path hash>-<stamps hash><cache_suffix>`` (e.g.
    ``-int8r3``, ``-g2``): when the weights change, the new conversion replaces the older
    ones of the same path. Entries of another graph or int8 recipe version with the same
    stamps stay: two installed sutra_fast versions sharing a cache would otherwise
    convert back and forth.
    """
    import hashlib

    from sutra_fast.convert import convert
    from sutra_fast.default_model import cache_dir, converting, first_use_notice

    def short_hash(text: str) -> str:
        return hashlib.sha256(os.fsencode(text)).hexdigest()[:8]

    src = folder.resolve()
    st = (src / "model.safetensors").stat()
    stem = f"{src.name}-{short_hash(str(src))}-"
    stamps = short_hash(f"{st.st_size}|{st.st_mtime_ns}")
    name = f"{stem}{stamps}{cache_suffix(quantize)}"
    models = cache_dir() / "models"
    target = models / name
    if (target / MANIFEST).is_file():
        return target
    with converting(name):
        if not (target / MANIFEST).is_file():
            what = f"converting {src} to ONNX{' (int8)' if quantize else ''}"
            with first_use_notice(what, target):
                convert(folder, target, quantize=quantize, overwrite=target.exists())
        _remove_older_conversions(models, stem, stamps)
    return target


def _remove_older_conversions(models: Path, stem: str, stamps: str) -> None:
    """Conversions of the same source path made from older weights (fp32 and int8,
    ~90 / ~25 MB each). A process that has one loaded keeps working (on Linux the
    files it opened or mapped stay readable); their pre-packed ORT copies go when
    the next copy is written (ort_session removes copies whose source is gone)."""
    import contextlib
    import re
    import shutil

    entry = re.compile(re.escape(stem) + r"([0-9a-f]{8})(-.+)?")
    for p in models.iterdir():
        m = entry.fullmatch(p.name)
        if m and m.group(1) != stamps and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            with contextlib.suppress(OSError):
                (models / f".{p.name}.lock").unlink()


def _resolve(path, quantize: Optional[str]) -> tuple[Path, Path]:
    """(model folder, onnx file) for ``Embedder.load``."""
    if path is None:
        from sutra_fast.default_model import ensure_default_model
        folder = ensure_default_model(quantize)
        return folder, folder / "model.onnx"
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise TypeError(f"path must be a str, an os.PathLike or None (the default model), "
                        f"got {type(path if text is None else text).__name__}")
    if not text.strip():   # e.g. an unset environment variable; not "the current folder"
        raise ValueError("path is empty: pass a model folder, or None for the default model "
                         "(all-MiniLM-L6-v2)")
    p = Path(text).expanduser()
    if p.is_file() and p.suffix == ".onnx":
        folder, onnx = (p.parent.parent if p.parent.name == "onnx" else p.parent), p
    elif p.is_dir():
        folder, onnx = p, _find_onnx(p)
    elif p.exists():
        raise ValueError(f"{p} is not a model: pass the model folder (or its .onnx file)")
    else:
        from sutra_fast.default_model import MODEL_ID
        if text in (MODEL_ID, MODEL_ID.split("/")[1]):   # the default model by its name
            return _resolve(None, quantize)
        raise FileNotFoundError(f"model folder {p} not found{hub_name_hint(text)}")
    can_convert = (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    if onnx is not None:
        manifest = read_manifest(folder)
        if quantize is None or manifest.get("quantize") == quantize:
            return folder, onnx
        if not can_convert:
            raise ValueError(
                f"quantize={quantize!r} needs the model's safetensors weights to build the "
                f"quantised graph, and {folder} has only {onnx.name}; point to the original "
                f"folder or run `sutra-fast convert SRC DST --quantize {quantize}`")
    elif not can_convert:
        raise FileNotFoundError(
            f"model.onnx not found in {folder} (looked for model.onnx and onnx/model.onnx; "
            "a folder with config.json + model.safetensors is converted instead)")
    folder = _convert_into_cache(folder, quantize)
    return folder, folder / "model.onnx"


class Embedder:
    """A loaded embedding model. Create it with :meth:`Embedder.load`.

    Thread-safe for concurrent :meth:`embed` calls (ORT sessions are).
    """

    def __init__(self, session, tokenizer: WordPieceTokenizer, *, model_id: str,
                 dimension: int, max_length: int, pooling: str, normalize: bool,
                 quantize: Optional[str], folder: Path):
        self._session = session
        self._tokenizer = tokenizer
        self._model_id = model_id
        self._dimension = dimension
        self._max_length = max_length
        self._pooling = pooling
        self._normalize_default = normalize
        self._quantize = quantize
        self.folder = folder
        self._input_names = [i.name for i in session.get_inputs()]
        outs = session.get_outputs()
        names = [o.name for o in outs]
        self._output = "last_hidden_state" if "last_hidden_state" in names else names[0]
        self._pool = _POOL[pooling]

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: Union[str, os.PathLike, None] = None, *, quantize: Optional[str] = None,
             threads: Optional[int] = None) -> "Embedder":
        """Load an embedding model.

        Arguments:
            path: None for the embedded default (all-MiniLM-L6-v2, converted
                into ``$SUTRA_CACHE_DIR`` on first use); a folder with
                ``model.onnx`` or ``onnx/model.onnx`` plus ``tokenizer.json`` (or
                ``vocab.txt``) and the sentence-transformers configs; or a HF
                BERT folder with ``config.json`` + ``model.safetensors``
                (converted into the cache on first use).
            quantize: None (fp32) or ``"int8"`` (SmoothQuant-calibrated dynamic
                int8; min cosine vs fp32 >= 0.995 on real text, see the docs).
            threads: ONNX Runtime intra-op threads (default: ORT's choice, the
                physical cores). Tokenisation uses ``sutra_fast.set_num_threads``.
        """
        if quantize not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
        if threads is not None:
            threads = check_int("threads", threads, 1, MAX_THREADS)
        folder, onnx_path = _resolve(path, quantize)
        tok_path = next((folder / n for n in ("tokenizer.json", "vocab.txt")
                         if (folder / n).is_file()), None)
        if tok_path is None:
            raise FileNotFoundError(f"tokenizer.json not found in {folder} (nor vocab.txt)")
        tokenizer = WordPieceTokenizer.from_file(tok_path)

        manifest = read_manifest(folder)
        st = sentence_transformers_settings(folder)
        config = read_json_object(folder / "config.json") if (folder / "config.json").is_file() else {}
        max_length = manifest.get("max_length") or st["max_length"]
        if not max_length:
            tc = folder / "tokenizer_config.json"
            mml = read_json_object(tc).get("model_max_length") if tc.is_file() else None
            max_length = min(int(mml) if mml and mml < 100_000 else 512,
                             int(config.get("max_position_embeddings", 512)))
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int) and positions > 0:
            max_length = min(int(max_length), positions)  # absolute positions end there
        rows = config.get("vocab_size")
        if isinstance(rows, int) and tokenizer.vocab_size > rows:
            raise ValueError(
                f"{tok_path} has {tokenizer.vocab_size} tokens but the model's embedding table "
                f"({folder / 'config.json'} vocab_size) has {rows} rows: the tokenizer does not "
                "belong to this model")
        try:
            session = _session(onnx_path, threads)
        except RuntimeError as e:
            if not (folder / MANIFEST).is_file():
                raise
            raise RuntimeError(f"{e}; the folder is a sutra_fast conversion: delete {folder} to "
                               "convert it again (a cache entry is rebuilt on the next load, a "
                               "folder you converted needs `sutra-fast convert` again)") from None
        out = next((o for o in session.get_outputs() if o.name == "last_hidden_state"),
                   session.get_outputs()[0])
        dim = manifest.get("dimension") or config.get("hidden_size") or out.shape[-1]
        if not isinstance(dim, int):
            raise ValueError(f"{onnx_path}: cannot tell the embedding dimension "
                             "(no config.json hidden_size and a symbolic output width)")
        return cls(session, tokenizer,
                   model_id=manifest.get("model_id") or folder.resolve().name,
                   dimension=int(dim), max_length=int(max_length),
                   pooling=manifest.get("pooling") or st["pooling"],
                   normalize=manifest.get("normalize", st["normalize"]),
                   quantize=manifest.get("quantize"), folder=folder)

    # ------------------------------------------------------------ properties
    @property
    def dimension(self) -> int:
        """Width of the vectors (before any Matryoshka ``dimensions``)."""
        return self._dimension

    @property
    def max_length(self) -> int:
        """Tokens per text, special tokens included; longer texts are truncated."""
        return self._max_length

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def pooling(self) -> str:
        return self._pooling

    @property
    def quantize(self) -> Optional[str]:
        return self._quantize

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        return self._tokenizer

    def __reduce__(self):
        # Pickling would have to reload the model for every task a process pool sends
        # (pool.map(emb.embed, chunks)): say what to do instead of hiding that cost.
        raise TypeError(
            "an Embedder holds an ONNX Runtime session and cannot be pickled or deep-copied; "
            "in each worker process call Embedder.load(...) once (e.g. in a Pool "
            "initializer), or share one Embedder between threads: embed() is thread-safe "
            "and runs outside the GIL")

    def __copy__(self) -> "Embedder":   # shallow: the same session and tokenizer
        twin = object.__new__(Embedder)
        twin.__dict__.update(self.__dict__)
        return twin

    def __repr__(self) -> str:
        return (f"Embedder(model_id={self._model_id!r}, dimension={self._dimension}, "
                f"max_length={self._max_length}, pooling={self._pooling!r}, "
                f"quantize={self._quantize!r})")

    # ------------------------------------------------------------ embedding
    def embed(self, texts: Union[str, Sequence[str]], *, batch_size: int = 32,
              normalize: bool = True, dimensions: Optional[int] = None,
              show_progress: bool = False) -> np.ndarray:
        """Embed texts.

        Arguments:
            texts: a str (one text) or a sequence of str.
            batch_size: most texts per ONNX Runtime call (texts are sorted by
                length first, and long batches are also capped at
                ``TOKEN_BUDGET`` tokens).
            normalize: L2-normalise the vectors.
            dimensions: Matryoshka: keep the first ``dimensions`` values (then
                normalise, if ``normalize``).
            show_progress: a progress bar on stderr (tqdm when installed).

        Returns:
            float32 array [len(texts), dimensions or dimension], in input order.
        """
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, (list, tuple)):
            if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
                raise TypeError(f"texts must be a str or a sequence of str, got {type(texts).__name__}")
            texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        batch_size = check_int("batch_size", batch_size, 1)
        normalize = check_flag("normalize", normalize)
        show_progress = check_flag("show_progress", show_progress)
        width = self._dimension
        if dimensions is not None:
            width = check_int("dimensions", dimensions, 1, self._dimension)
        n = len(texts)
        out = np.empty((n, self._dimension), dtype=np.float32)
        progress = _Progress(n) if show_progress and n else None
        try:
            for start in range(0, n, _CHUNK):
                self._embed_chunk(texts[start:start + _CHUNK], out[start:start + _CHUNK],
                                  batch_size, progress)
        finally:
            if progress is not None:
                progress.close()
        if width != self._dimension:
            if normalize:
                return kernels.matryoshka(out, width)
            return np.ascontiguousarray(out[:, :width])
        if normalize and n:
            kernels.l2_normalize(out, inplace=True)
        return out

    def _embed_chunk(self, texts: Sequence[str], out: np.ndarray, batch_size: int,
                     progress: Optional["_Progress"]) -> None:
        enc = self._tokenizer.encode_batch(texts, max_length=self._max_length)
        mask = enc["attention_mask"]
        n = len(texts)
        # Padded to the longest text: when that fits, one call, no sorting (and
        # no numpy reductions, which cost ~50 us cold - a tenth of a short text's time).
        if n <= batch_size and n * mask.shape[1] <= TOKEN_BUDGET:
            out[:] = self._forward(enc)
            if progress is not None:
                progress.update(n)
            return
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        i = 0
        while i < n:
            # Rows sorted by length: the batch is as wide as its last row.
            j = min(n, i + batch_size)
            while j - i > 1 and (j - i) * int(lengths[order[j - 1]]) > TOKEN_BUDGET:
                j = i + max(1, TOKEN_BUDGET // int(lengths[order[j - 1]]))
            rows = order[i:j]
            w = int(lengths[rows[-1]])
            out[rows] = self._forward({k: np.ascontiguousarray(v[rows, :w]) for k, v in enc.items()})
            if progress is not None:
                progress.update(j - i)
            i = j

    def _forward(self, feed: dict) -> np.ndarray:
        feed = {k: feed[k] for k in self._input_names}
        try:
            hidden = self._session.run([self._output], feed)[0]
        except Exception as e:  # ORT's own exception types; the model, not the input, is at fault
            raise RuntimeError(f"ONNX Runtime failed running {self.folder} on a batch of "
                               f"{feed['input_ids'].shape[0]} x {feed['input_ids'].shape[1]} "
                               f"tokens: {e}") from None
        if hidden.dtype != np.float32 or not hidden.flags.c_contiguous:
            hidden = np.ascontiguousarray(hidden, dtype=np.float32)
        return self._pool(hidden, feed["attention_mask"] if "attention_mask" in feed
                          else np.ones(hidden.shape[:2], np.int64))


def _session(onnx_path: Path, threads: Optional[int]):
    import onnxruntime as ort

    from sutra_fast.ort_session import create_session

    def options():
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if threads is not None:
            so.intra_op_num_threads = threads
        so.enable_cpu_mem_arena = True
        # Memory patterns pay off for fixed shapes only; with our varying batch
        # shapes they cost ~40 MB of peak RSS over 2000 sentences and no speed.
        so.enable_mem_pattern = False
        so.log_severity_level = 3
        return so

    try:
        return create_session(onnx_path, options)
    except Exception as e:  # ORT raises its own exception types
        raise RuntimeError(f"ONNX Runtime could not load {onnx_path}: {e}") from e


class _Progress:
    """tqdm when installed, else a minimal stderr counter."""

    def __init__(self, total: int):
        try:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, unit="text", desc="embed")
        except ImportError:
            self._bar = None
        self.total, self.done = total, 0

    def update(self, k: int) -> None:
        self.done += k
        if self._bar is not None:
            self._bar.update(k)
        else:
            sys.stderr.write(f"\rembed: {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
