"""Text input of the CLI commands: UTF-8 checks whose errors name where the bad
input came from (one line from ``sutra-fast``, exit 2)."""
from __future__ import annotations


def decode_utf8(data: bytes, source: str) -> str:
    """``data`` as text; RuntimeError naming ``source`` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuntimeError(f"{source} is not valid UTF-8 (byte 0x{e.object[e.start]:02x} at "
                           f"offset {e.start}); pass UTF-8 text") from None


def check_utf8(text: str, source: str) -> str:
    """``text`` if it has a UTF-8 form: undecodable argv bytes arrive as lone
    surrogates (surrogateescape), which the compiled code cannot take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RuntimeError(f"{source} is not valid UTF-8 (undecodable input at character "
                           f"{e.start}); pass UTF-8 text") from None
    return text
