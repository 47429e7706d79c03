"""Fault injection through botocore event hooks on the engine's own S3 client.

``before-send`` handlers see each prepared request just before it would go on the wire: they
record headers, answer with a fabricated ``AWSResponse`` (the request never reaches moto),
perform the request through a clean client first and then fail the connection (the request
did reach moto: an unknown outcome), or let it through (return None).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from retentiond.stores.s3 import retry
from retentiond.stores.s3 import store as s3store

Handler = Callable[[Any], AWSResponse | None]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def response(status: int, body: str) -> AWSResponse:
    """Return a fabricated HTTP response."""
    return AWSResponse("http://fake", status, {"Content-Type": "application/xml"}, _Raw(body.encode()))


def error_body(code: str, message: str = "injected") -> str:
    """Return an S3 ``<Error>`` document."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>x</RequestId></Error>"
    )


def objects_of(request: Any) -> list[tuple[str, str | None]]:
    """Return the (key, version) pairs of a DeleteObjects request body."""
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
    out: list[tuple[str, str | None]] = []
    for obj in re.findall(r"<Object>(.*?)</Object>", body, re.DOTALL):
        key = re.search(r"<Key>(.*?)</Key>", obj, re.DOTALL)
        version = re.search(r"<VersionId>(.*?)</VersionId>", obj, re.DOTALL)
        assert key is not None
        out.append((_unescape(key.group(1)), _unescape(version.group(1)) if version else None))
    return out


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def delete_result(deleted: list[tuple[str, str | None]], errors: list[tuple[str, str | None, str]]) -> str:
    """Return a DeleteObjects result document."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']
    for key, version in deleted:
        parts.append(
            f"<Deleted><Key>{escape(key)}</Key>"
            + (f"<VersionId>{escape(version)}</VersionId>" if version else "")
            + "</Deleted>"
        )
    for key, version, code in errors:
        parts.append(
            f"<Error><Key>{escape(key)}</Key>"
            + (f"<VersionId>{escape(version)}</VersionId>" if version else "")
            + f"<Code>{code}</Code><Message>injected</Message></Error>"
        )
    parts.append("</DeleteResult>")
    return "".join(parts)


@dataclass
class Faults:
    """Hooks installed on every client the engine creates, and what they saw."""

    clean: Any  # a client without hooks, to really perform requests
    handlers: dict[str, list[Handler]] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    sleeps: list[float] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (operation, first object key) in send order

    def on(self, operation: str, handler: Handler) -> None:
        """Answer the next call of ``operation`` with ``handler`` (queued: one handler per call)."""
        self.handlers.setdefault(operation, []).append(handler)

    def _before_send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        self.headers.append({k.lower(): str(v) for k, v in request.headers.items()})
        event = kwargs.get("event_name", "")
        operation = event.rsplit(".", 1)[-1]
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if operation == "DeleteObjects":
            first = objects_of(request)
            self.sent.append((operation, first[0][0] if first else ""))
        queue = self.handlers.get(operation)
        if queue:
            return queue.pop(0)(request)
        return None

    def install(self, client: Any) -> Any:
        """Register the hooks on ``client``; return it."""
        client.meta.events.register("before-send.s3.*", self._before_send)
        return client

    # -- ready-made faults -------------------------------------------------------------------------

    def slow_down_503(self, request: Any) -> AWSResponse:
        """Throttle: 503 SlowDown (nothing happens on the server)."""
        return response(503, error_body("SlowDown", "Please reduce your request rate."))

    def slow_down_200(self, request: Any) -> AWSResponse:
        """Throttle inside a 200 body (nothing happens on the server)."""
        return response(200, error_body("SlowDown", "Please reduce your request rate."))

    def internal_error_500(self, request: Any) -> AWSResponse:
        """A 500 InternalError (nothing happens on the server)."""
        return response(500, error_body("InternalError"))

    def half_internal_error(self, request: Any) -> AWSResponse:
        """A 200 DeleteObjects where the first half is really deleted and the rest answered InternalError per key."""
        items = objects_of(request)
        half = items[: len(items) // 2]
        bucket = request.url.split("/")[3].split("?")[0]
        if half:
            self.clean.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in half]})
        return response(200, delete_result(half, [(k, v, "InternalError") for k, v in items[len(half) :]]))

    def all_internal_error(self, request: Any) -> AWSResponse:
        """A 200 DeleteObjects answering InternalError for every key (nothing deleted)."""
        return response(200, delete_result([], [(k, v, "InternalError") for k, v in objects_of(request)]))

    def reset_after_send(self, request: Any) -> AWSResponse:
        """Perform the request for real, then drop the connection before the answer (unknown outcome)."""
        items = objects_of(request)
        bucket = request.url.split("/")[3].split("?")[0]
        self.clean.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in items]})
        raise ConnectionClosedError(endpoint_url=request.url)

    def reset_before_effect(self, request: Any) -> AWSResponse:
        """Drop the connection after sending, the server having done nothing (unknown outcome, nothing deleted)."""
        raise ConnectionClosedError(endpoint_url=request.url)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch, s3_client: Any) -> Faults:
    """Hooks on the engine's clients; ``retry.sleep`` records its waits instead of sleeping."""
    state = Faults(clean=s3_client)
    original = s3store.make_client

    def make(*args: Any, **kwargs: Any) -> Any:
        return state.install(original(*args, **kwargs))

    monkeypatch.setattr(s3store, "make_client", make)
    monkeypatch.setattr(retry, "sleep", state.sleeps.append)
    return state
