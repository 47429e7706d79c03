"""Retry policy of S3 calls: which failures are transient, and how long to wait between attempts.

botocore's own retries are switched off for the engine's clients (``max_attempts = 1``) so
that this module alone decides: throttling (503 ``SlowDown``, also ``SlowDown`` inside a 200
body, which botocore turns into a 500), 500s and connection failures are retried with
exponential backoff plus jitter (``initial * 2**n + U(0, jitter)``, capped), a bounded number
of times. The jitter is smaller than the first step, so every wait is longer than the one
before it until the cap: a throttled endpoint sees the load fall off quickly.

Each retried call runs in its own pool thread, so a throttled request never stalls the
other workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

T = TypeVar("T")

#: error codes worth another attempt (throttling, server-side trouble)
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "500",
        "502",
        "503",
        "504",
    }
)

ATTEMPTS = 6
INITIAL_WAIT = 0.2  # seconds
MAX_WAIT = 8.0
JITTER = 0.1


def sleep(seconds: float) -> None:
    """Sleep between attempts (a module-level function so tests can record the waits)."""
    time.sleep(seconds)


def error_code(exc: BaseException) -> str | None:
    """Return the S3 error code of a botocore ``ClientError`` (or its HTTP status), else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", "") or "")
    if code:
        return code
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(status) if status else None


def is_connection_error(exc: BaseException) -> bool:
    """Return True for a network failure (connection refused, reset, closed, timed out)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def is_unknown_outcome(exc: BaseException) -> bool:
    """Return True when the request may have reached S3 before the failure (reset after sending).

    A refused connection or a connect timeout never sent the request: its outcome is known
    (nothing happened). Anything else on the wire may have been executed by S3.
    """
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return False
    return is_connection_error(exc)


def is_transient(exc: BaseException) -> bool:
    """Return True when ``exc`` is worth another attempt."""
    if is_connection_error(exc):
        return True
    code = error_code(exc)
    return code is not None and code in TRANSIENT_CODES


def retrying(attempts: int = ATTEMPTS, retry_on: Callable[[BaseException], bool] = is_transient) -> Retrying:
    """Return a tenacity controller: ``attempts`` tries, exponential backoff with jitter, reraising the last error."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=INITIAL_WAIT, max=MAX_WAIT, exp_base=2) + wait_random(0, JITTER),
        retry=retry_if_exception(retry_on),
        sleep=lambda seconds: sleep(seconds),
        reraise=True,
    )


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Return ``fn(*args, **kwargs)``, retried on transient failures.

    Raises:
        Whatever ``fn`` raised on the last attempt, or at once when the failure is not transient.
    """
    return retrying()(fn, *args, **kwargs)


class Budget:
    """One retry budget and one backoff sequence for a chunk, shared by every retry layer.

    A request retried for per-key errors and then throttled (SlowDown, 503, a reset connection)
    waits longer each time across both causes: ``ATTEMPTS`` sends per chunk in all, the wait
    before each resend the next step of one growing sequence (not a fresh sequence per layer).
    """

    def __init__(self, attempts: int = ATTEMPTS) -> None:
        self.attempts = attempts
        self.sends = 0

    def next_send(self) -> bool:
        """Wait the next backoff step unless this is the chunk's first send; return True when it is the last one."""
        if self.sends:
            sleep(backoff(self.sends))
        self.sends += 1
        return self.sends >= self.attempts


def backoff(attempt: int) -> float:
    """Return the wait before retry number ``attempt`` (1-based) of per-key errors, same shape as :func:`retrying`."""
    import random

    return float(min(MAX_WAIT, INITIAL_WAIT * 2 ** (attempt - 1) + random.uniform(0, JITTER)))
