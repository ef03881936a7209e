"""Requests as data: what a durable store writes, and reads back after a restart.

A stored request is JSON: its URL, method, headers, body (base64), cookies, priority, depth,
``dont_filter``, its attempt and redirect count (a retry or hop goes on where it was), its
callback and errback *by the name of the spider method*, and ``meta`` /
``cb_kwargs`` as JSON. Nothing read back is unpickled or evaluated; a callback name is looked
up on the spider class, nothing else. A request that cannot be stored this way (a lambda as
callback, a ``datetime`` in ``meta``) fails when it is queued, with an error naming the
request and the key, never later when a resumed crawl tries to read it back.

What JSON would change without a word comes back as it was: a tuple (JSON has only
lists), ``bytes``, and a dict whose keys are not all strings (JSON would turn ``{0: x}``
into ``{"0": x}``, and the callback's ``meta["names"][0]`` would fail) are written as a
one-key object whose key starts with NUL (``{"\u0000tuple": [...]}``), which no such
dict of the spider's is written as: a dict with a key starting with NUL is itself written
in the tagged form.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ._request import Request

__all__ = ["RequestCodec", "UnstorableRequest"]


_PLAIN_KEYS = frozenset({"url", "depth", "callback"})
_string = json.encoder.encode_basestring  # a str as a JSON string (the C encoder)
_TAG = "\x00"  # starts the one key of an object that stands for a tuple, bytes or a dict
_TUPLE, _BYTES, _DICT = _TAG + "tuple", _TAG + "bytes", _TAG + "dict"


class UnstorableRequest(TypeError):
    """The request holds something a durable store cannot keep as data."""


class RequestCodec:
    """Turns requests of one spider into JSON text and back."""

    def __init__(self, spider: object) -> None:
        self._spider = spider
        self._methods: dict[str, Any] = {}  # callback name -> bound method, for decode

    def encode(self, request: Request) -> str:
        if (  # a plain followed link, most of a crawl: written directly (a shared frontier's hot path)
            request._meta is None
            and request._headers is None
            and request._cb_kwargs is None
            and request.body is None
            and request.cookies is None
            and request.errback is None
            and request.method == "GET"
            and not request.priority
            and not request.dont_filter
            and request.attempt == 1
            and not request.redirects
        ):
            text = '{"url":' + _string(request.url)
            if request.depth:
                text += f',"depth":{int(request.depth)}'
            if request.callback is not None:
                text += ',"callback":' + _string(self._method_name(request, "callback") or "")
            return text + "}"
        data: dict[str, Any] = {"url": request.url}
        if request.method != "GET":
            data["method"] = request.method
        if request._headers:
            data["headers"] = request._headers
        if request.body is not None:
            data["body"] = base64.b64encode(request.body).decode("ascii")
        if request.cookies:
            data["cookies"] = request.cookies
        if request.priority:
            data["priority"] = request.priority
        if request.depth:
            data["depth"] = request.depth
        if request.dont_filter:
            data["dont_filter"] = True
        if request.attempt != 1:
            data["attempt"] = request.attempt
        if request.redirects:
            data["redirects"] = request.redirects
        for key in ("callback", "errback"):
            name = self._method_name(request, key)
            if name is not None:
                data[key] = name
        try:
            if request._meta:
                data["meta"] = request._meta if _kept(request._meta) else _pack(request._meta)
            if request._cb_kwargs:
                data["cb_kwargs"] = request._cb_kwargs if _kept(request._cb_kwargs) else _pack(request._cb_kwargs)
            return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            # Named in the spider's own terms (its keys, not the tags that stand for them).
            data.update(meta=request._meta, cb_kwargs=request._cb_kwargs)
            raise UnstorableRequest(f"{request!r} cannot be stored: {self._culprit(data)}") from None

    def decode(self, text: str) -> Request:
        try:
            return self._decode(text)
        except RecursionError:  # (a crafted entry): a bad entry like any other
            raise ValueError("a stored request nested too deeply") from None

    def _decode(self, text: str) -> Request:
        data = json.loads(text)
        tagged = "\\u0000" in text  # (JSON always escapes NUL: no tag, nothing to unpack)
        if len(data) <= 3 and all(key in _PLAIN_KEYS for key in data):  # a plain link: built directly
            return Request._link(data["url"], self._method(data.get("callback")), data.get("depth", 0), "")
        body = data.get("body")
        request = Request(
            data["url"],
            callback=self._method(data.get("callback")),
            errback=self._method(data.get("errback")),
            method=data.get("method", "GET"),
            headers=data.get("headers"),
            body=base64.b64decode(body) if body is not None else None,
            meta=_unpack(data.get("meta")) if tagged else data.get("meta"),
            cb_kwargs=_unpack(data.get("cb_kwargs")) if tagged else data.get("cb_kwargs"),
            priority=data.get("priority", 0),
            dont_filter=data.get("dont_filter", False),
            cookies=data.get("cookies"),
        )
        request.depth = data.get("depth", 0)
        request.attempt = data.get("attempt", 1)
        request.redirects = data.get("redirects", 0)
        return request

    def _method_name(self, request: Request, key: str) -> str | None:
        function = getattr(request, key)
        if function is None:
            return None
        name = getattr(function, "__name__", None)
        bound_here = getattr(function, "__self__", None) is self._spider
        if bound_here and name and getattr(self._spider, name, None) == function:
            return str(name)
        raise UnstorableRequest(
            f"{request!r} cannot be stored: its {key} {function!r} is not a method of the spider "
            "(a durable store keeps callbacks by method name)"
        )

    def _method(self, name: str | None) -> Any:
        if name is None:
            return None
        found = self._methods.get(name)
        if found is not None:
            return found
        method = getattr(type(self._spider), name, None)
        if not isinstance(name, str) or not callable(method):
            raise UnstorableRequest(f"the spider has no method {name!r}: the stored crawl was made by another spider")
        found = self._methods[name] = getattr(self._spider, name)
        return found

    @staticmethod
    def _culprit(data: dict[str, Any]) -> str:
        """Which key of meta / cb_kwargs (or which field) holds what JSON cannot keep."""
        for field in ("meta", "cb_kwargs", "headers", "cookies"):
            for key, value in (data.get(field) or {}).items() if isinstance(data.get(field), dict) else ():
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    return f"{field}[{key!r}] is not JSON data ({exc})"
                except RecursionError:
                    return f"{field}[{key!r}] is nested too deeply"
        return "a field is not JSON data"


def _kept(value: Any) -> bool:
    """Whether JSON gives ``value`` back as it is (most meta: no tag, no copy). Scalars are
    checked inline: a call per leaf would cost more than the packing it saves."""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str or key.startswith(_TAG):
                return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False  # a tuple, bytes, a subclass (packed as its base), or what JSON refuses
    for item in items:
        kind = type(item)
        if not (kind is str or kind is int or kind is float or kind is bool or item is None or _kept(item)):
            return False
    return True


def _pack(value: Any) -> Any:
    """``value`` with what JSON would change tagged (see the module doc); anything else that
    JSON cannot keep is left for ``json.dumps`` to refuse (and ``_culprit`` to name). Loops,
    not comprehensions: one frame a level, so it goes as deep as ``json`` does."""
    if isinstance(value, str | int | float) or value is None:  # (bool is an int)
        return value
    if isinstance(value, dict):
        if all(type(key) is str and not key.startswith(_TAG) for key in value):
            packed = {}
            for key, item in value.items():
                packed[key] = _pack(item)
            return packed
        pairs = []
        for key, item in value.items():
            pairs.append([_pack(key), _pack(item)])
        return {_DICT: pairs}
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            items.append(_pack(item))
        return items if isinstance(value, list) else {_TUPLE: items}
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    return value


def _unpack(value: Any) -> Any:
    """What :func:`_pack` tagged, as it was (an entry that is not one raises TypeError or
    ValueError: a bad entry, reported by the store)."""
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(_unpack(item))
        return items
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, item),) = value.items()
        if key == _TUPLE:
            return tuple(_unpack(item))
        if key == _DICT:
            unpacked = {}
            for k, v in item:
                unpacked[_unpack(k)] = _unpack(v)
            return unpacked
        if key == _BYTES:
            return base64.b64decode(item, validate=True)
    plain = {}
    for key, item in value.items():
        plain[key] = _unpack(item)
    return plain
