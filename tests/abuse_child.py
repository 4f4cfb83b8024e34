"""Runs inside the subprocess of each abuse test (see test_abuse.py).

``case(name, fn)`` calls fn and records its outcome: "ok", "clean:<Error>" for
a ValueError/TypeError/FileNotFoundError (subclasses included), or
"unclean:<Error>: message" for anything else. A crash (signal) kills the
process, which the parent reports together with the last case started.
"""
from __future__ import annotations

import json
import sys

CLEAN = (ValueError, TypeError, FileNotFoundError)
outcomes: dict[str, str] = {}


def case(name: str, fn) -> None:
    print(f"START {name}", file=sys.stderr, flush=True)
    try:
        fn()
        outcomes[name] = "ok"
    except CLEAN as e:
        outcomes[name] = f"clean:{type(e).__name__}"
    except BaseException as e:  # noqa: BLE001 - everything else is the finding
        outcomes[name] = f"unclean:{type(e).__name__}: {str(e)[:300]}"


def report() -> None:
    print("RESULT " + json.dumps(outcomes), flush=True)
