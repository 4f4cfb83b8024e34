"""The aiohttp server behind ``sutra-fast serve`` (see README.md, section
"HTTP server: `sutra-fast serve`").

Imports lazily, so that ``sutra_fast.server.config`` (used to build the CLI)
works without the ``server`` extra installed.
"""
__all__ = ["create_app", "ServerConfig", "serve"]


def __getattr__(name):
    if name == "create_app":
        from sutra_fast.server.app import create_app
        return create_app
    if name == "ServerConfig":
        from sutra_fast.server.config import ServerConfig
        return ServerConfig
    if name == "serve":
        from sutra_fast.server.run import serve
        return serve
    raise AttributeError(name)
