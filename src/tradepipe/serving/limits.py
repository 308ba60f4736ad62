"""Bounds on what a client can make the server hold or echo: body size, message length, secrets in reasons."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import HTTPException, Request

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_TEXT = 200
MAX_ITEMS = 10
MAX_MESSAGE = 2000
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


def truncate(value: object, limit: int = MAX_TEXT) -> str:
    """``str(value)`` cut to ``limit`` characters, saying how many more there were."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more chars)"


def preview(items: Iterable[object], n: int = MAX_ITEMS, limit: int = MAX_TEXT) -> str:
    """The first ``n`` items (each truncated), then ``… N more``: a list an error message can echo."""
    values = list(items)
    shown = ", ".join(repr(truncate(v, limit)) if isinstance(v, str) else truncate(v, limit) for v in values[:n])
    return f"[{shown}{f', … {len(values) - n} more' if len(values) > n else ''}]"


def redact(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def reason(code: str, exc: BaseException) -> str:
    """A reason a client may see: a code and the exception's class, never its message (URIs, SQL, paths)."""
    return f"{code}: {type(exc).__name__}"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) one declared or streamed beyond ``max_bytes``: memory stays bounded."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
            raise HTTPException(400, "invalid Content-Length header")
        if int(declared) > max_bytes:
            raise HTTPException(413, f"request body of {declared} bytes is over the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"request body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
