"""Pure-Python twin of the compiled RWKV World tokenizer.

A plain dict-of-dicts trie walked byte by byte; the vocabulary lines are parsed
with ``ast.literal_eval``. Greedy longest match: from each position take the
longest token that is a prefix of the remaining bytes.
"""
from __future__ import annotations

import ast
import os


class WorldTokenizer:
    def __init__(self, path: str | os.PathLike):
        self.id_to_bytes: dict[int, bytes] = {0: b""}
        self.root: dict = {}  # byte -> child node; key None holds the token id ending here
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                try:
                    first, last = line.index(" "), line.rindex(" ")
                    idx = int(line[:first])
                    token = ast.literal_eval(line[first:last].strip())
                    if isinstance(token, str):
                        token = token.encode("utf-8")
                    if not isinstance(token, bytes) or len(token) != int(line[last:]):
                        raise ValueError("bad token or byte length")
                except (ValueError, SyntaxError, UnicodeEncodeError) as e:
                    raise ValueError(f"vocabulary line {line_no}: {e}") from None
                self.id_to_bytes[idx] = token
                node = self.root
                for byte in token:
                    node = node.setdefault(byte, {})
                node[None] = idx  # a later line with the same bytes wins
        self.vocab_size = max(self.id_to_bytes) + 1

    def encode_bytes(self, data: bytes) -> list[int]:
        ids = []
        i = 0
        while i < len(data):
            node = self.root
            best_id, best_end = None, i
            j = i
            while j < len(data) and data[j] in node:
                node = node[data[j]]
                j += 1
                if None in node:
                    best_id, best_end = node[None], j
            if best_id is None:
                raise ValueError(f"byte 0x{data[i]:02x} at offset {i} starts no token of this vocabulary")
            ids.append(best_id)
            i = best_end
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_bytes(text.encode("utf-8"))

    def decode_bytes(self, ids) -> bytes:
        out = []
        for i in ids:
            if i not in self.id_to_bytes:
                raise ValueError(f"token id {i} is out of range or has no token")
            out.append(self.id_to_bytes[i])
        return b"".join(out)

    def decode(self, ids, errors: str = "replace") -> str:
        return self.decode_bytes(ids).decode("utf-8", errors)
