"""Content-Encoding decoded in bounded pieces, for downloaders whose client cannot do it.

A compression bomb (100 MB of zeros gzip to about 100 KB) is only harmless if no single
step inflates much: httpx's decoders, for one, inflate each raw chunk whole, so one 64 KB
chunk can become 64 MB before any cap sees it. :func:`decoded` inflates at most ``PIECE``
bytes per step (zlib's ``max_length``, brotli's ``output_buffer_limit``), so the body cap
(:func:`crawler.read_capped`) stops a bomb at about the cap in memory. aiohttp bounds its
own inflation and does not need this.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator
from typing import Any

from ._exceptions import RequestFailed
from ._request import Request

__all__ = ["PIECE", "accept_encoding", "decoded", "is_supported"]

PIECE = 256 * 1024  # the most one step inflates
_MAX_CODINGS = 4  # browsers and servers use one; gzip over br over gzip is already absurd


def accept_encoding() -> str:
    """The Accept-Encoding to send: what :func:`decoded` can undo here."""
    return "gzip, deflate, br" if "br" in _supported() else "gzip, deflate"


def is_supported(content_encoding: str) -> bool:
    """Whether :func:`decoded` can undo every coding in a Content-Encoding header."""
    return all(coding in _supported() for coding in _codings(content_encoding))


@functools.cache
def _supported() -> frozenset[str]:
    """The codings undone here: brotli only from 1.2 on (bounded output)."""
    names = {"gzip", "x-gzip", "deflate"}
    try:
        import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return frozenset(names)
    if hasattr(brotli.Decompressor(), "can_accept_more_data"):
        names.add("br")
    return frozenset(names)


async def decoded(raw: AsyncIterator[bytes], content_encoding: str, request: Request) -> AsyncIterator[bytes]:
    """The body behind ``raw`` (its bytes as sent) with ``content_encoding`` undone, in
    pieces of at most PIECE bytes. Bad compressed data is a ``bad_response`` failure."""
    codings = _codings(content_encoding)
    if len(codings) > _MAX_CODINGS:  # each is a generator in a chain: a long list is an attack
        raise RequestFailed("bad_response", f"{len(codings)} content codings stacked", request=request)
    stream = raw
    for coding in reversed(codings):  # the last coding applied is undone first
        decoder = _decoder(coding)
        if decoder is not None:
            stream = _inflate(stream, decoder, coding, request)
    async for piece in stream:
        yield piece


def _codings(content_encoding: str) -> list[str]:
    return [c.strip().lower() for c in content_encoding.split(",") if c.strip() and c.strip().lower() != "identity"]


class _Zlib:
    errors: tuple[type[Exception], ...] = (zlib.error,)

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._inflater: Any = zlib.decompressobj(wbits)
        self._started = False

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        """Inflate at most PIECE bytes of ``data``: (output, input left over)."""
        try:
            out = self._inflater.decompress(data, PIECE)
        except zlib.error:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise
            # "deflate" is meant to be zlib-wrapped, but servers send raw deflate too.
            self._wbits = -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(self._wbits)
            out = self._inflater.decompress(data, PIECE)
        self._started = True
        if self._inflater.eof:
            return out, b""  # what follows the stream's end (trailing garbage) is dropped
        return out, self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        return bytes(self._inflater.flush())


class _Brotli:
    def __init__(self) -> None:
        import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._inflater = brotli.Decompressor()
        self.errors: tuple[type[Exception], ...] = (brotli.error,)

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        return bytes(self._inflater.process(data, output_buffer_limit=PIECE)), b""

    def pending(self) -> bool:
        """More output is waiting: ask again with no new input before giving it more."""
        return not self._inflater.can_accept_more_data()

    def finish(self) -> bytes:
        return b""


def _decoder(coding: str) -> _Zlib | _Brotli | None:
    if coding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if coding == "br" and coding in _supported():
        return _Brotli()
    return None


async def _inflate(
    raw: AsyncIterator[bytes], decoder: _Zlib | _Brotli, coding: str, request: Request
) -> AsyncIterator[bytes]:
    try:
        async for chunk in raw:
            data = chunk
            while True:
                out, data = decoder.step(data)
                if out:
                    yield out
                if isinstance(decoder, _Brotli):
                    if not decoder.pending():
                        break
                elif not data and len(out) < PIECE:  # a full piece: zlib may hold more output
                    break
        tail = decoder.finish()
        if tail:
            yield tail
    except decoder.errors as exc:
        raise RequestFailed("bad_response", f"the {coding} body cannot be decoded: {exc}", request=request) from None
