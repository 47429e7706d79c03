"""Transient SQL errors are retried per batch; what is not retried is named, never hidden.

A batch is one transaction, so repeating it is safe: a lock timeout, a statement timeout, a
serialization failure or deadlock, a dropped connection (``errors.DatabaseError.transient``)
rolls the batch back and it runs again from the same cursor, up to ``retry_attempts`` times
with exponential backoff and jitter (``retry_wait * 2**n + U(0, retry_wait / 2)``, at most
``retry_max_wait``; the jitter is smaller than the first step, so every wait is longer than
the one before until the cap). Then, and for any other database error, the category fails
with the SQLSTATE and the server's primary message (object names, never values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from retentiond.config.models import SqlStore
from retentiond.errors import ConfigError, ConfigIssue, RetentiondError, TemporaryFailure
from retentiond.logs import get_logger
from retentiond.stores.sql.errors import describe

log = get_logger("retentiond.run")

T = TypeVar("T")


def sleep(seconds: float) -> None:
    """Sleep between attempts (module level so tests can record the waits)."""
    time.sleep(seconds)


def is_transient(exc: BaseException) -> bool:
    """Return True when the database error ``exc`` may not happen again (see ``errors._TRANSIENT_STATES``)."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return bool(exc.connection_invalidated) or describe(exc).transient


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a batch is tried again (``[stores.NAME]`` ``retry_*``)."""

    attempts: int = 5
    wait: timedelta = timedelta(seconds=1)
    max_wait: timedelta = timedelta(seconds=30)

    @classmethod
    def of(cls, store: SqlStore) -> RetryPolicy:
        """Return the policy of ``store``'s settings."""
        return cls(attempts=store.retry_attempts, wait=store.retry_wait, max_wait=store.retry_max_wait)

    def retrying(self, on_retry: Callable[[RetryCallState], None] | None = None) -> Retrying:
        """Return a tenacity controller for one batch (reraises the last error)."""
        first = self.wait.total_seconds()
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=first, max=self.max_wait.total_seconds(), exp_base=2)
            + wait_random(0, first / 2),
            retry=retry_if_exception(is_transient),
            sleep=lambda seconds: sleep(seconds),
            before_sleep=on_retry,
            reraise=True,
        )


def call(policy: RetryPolicy, where: str, path: str, fn: Callable[[], T]) -> T:
    """Return ``fn()``, retried on transient database errors; ``where`` names store and target in messages.

    Raises:
        TemporaryFailure: a transient error persisted through every attempt (SQLSTATE and message).
        ConfigError: any other database error, at ``path`` (permissions, a schema that changed).
    """

    def on_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "transient database error; retrying the batch",
            target=where,
            attempt=state.attempt_number,
            error=describe(exc).render() if exc is not None else None,
            wait_s=round(state.next_action.sleep, 2) if state.next_action is not None else None,
        )

    try:
        return policy.retrying(on_retry)(fn)
    except sa.exc.DBAPIError as exc:
        raise statement_error(policy, where, path, exc) from None


def statement_error(policy: RetryPolicy, where: str, path: str, exc: sa.exc.DBAPIError) -> RetentiondError:
    """Return the error that fails the category after ``exc`` (transient: after every attempt)."""
    described = describe(exc)
    if is_transient(exc):
        return TemporaryFailure(f"{where}: {described.render()} (still failing after {policy.attempts} attempts)")
    if described.configuration:
        return ConfigError([ConfigIssue(path, f"the database refused it: {described.render()}")])
    return ConfigError([ConfigIssue(path, f"{where}: {described.render()}")])
