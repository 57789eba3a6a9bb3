"""Teacher backends: things that complete chat messages for the request engine.

Each backend implements ``mindmirror.requests.types.Backend`` (``model`` and an async
``complete(messages, n, sampling) -> Reply``) and may add ``check()`` (a cheap reachability and
key test the engine runs once before its first request) and ``aclose()`` (release connections
at the end of a run). ``OpenAIBackend`` covers every OpenAI-compatible HTTP server.
"""

from mindmirror.teacher.backends.openai_http import OpenAIBackend, parse_retry_after

__all__ = ["OpenAIBackend", "parse_retry_after"]
