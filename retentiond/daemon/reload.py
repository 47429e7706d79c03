"""SIGHUP: re-read and validate the configuration and holds, then apply them or keep the running ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from retentiond.actions.holdwatch import HoldWatcher
from retentiond.actions.leases import runner_locks
from retentiond.actions.setup import AuditHandles, ledger_url, open_audit
from retentiond.audit.events import ConfigLoaded, ConfigRejected
from retentiond.config.loader import LoadedConfig, load_config
from retentiond.daemon import sdnotify
from retentiond.daemon.core import DaemonParts, file_sha256, validate
from retentiond.daemon.scheduler import job_specs
from retentiond.daemon.state import ScheduleState
from retentiond.errors import ConfigError, HoldsUnavailable, RetentiondError, TemporaryFailure
from retentiond.logs import get_logger

log = get_logger("retentiond.daemon")


class Reloading(DaemonParts):
    """Reload of :class:`~retentiond.daemon.service.Daemon` (a mixin)."""

    def reload(self) -> bool:
        """Re-read and validate the configuration and holds; apply them or keep the old ones.

        Returns True when the new configuration was applied. Never raises: a refused reload is
        logged, audited as ``config_rejected`` (file hash and issue count, never content) and
        counted.
        """
        sdnotify.notify(*sdnotify.reloading_fields(), "STATUS=reloading")
        log.info("reload requested")
        # Hold changes that came with this SIGHUP are audited even when the config is refused.
        self._refresh_holds(source_on_error=None)
        new_audit: AuditHandles | None = None
        try:
            try:
                new = load_config(self.config_path)
                validate(new)
            except ConfigError as exc:
                self._reject("config", file_sha256(self.config_path), len(exc.issues) or 1, exc)
                return False
            except TemporaryFailure as exc:
                self._reject("config", file_sha256(self.config_path), 1, exc)
                return False
            assert self.audit is not None
            same_ledger = (ledger_url(new), new.settings.audit.ledger_id) == (
                ledger_url(self.loaded),
                self.loaded.settings.audit.ledger_id,
            )
            new_audit = open_audit(new) if not same_ledger or self._keys_changed(new) else None
            audit = new_audit or self.audit
            watcher = self._new_watcher(new, audit)
            try:
                watcher.protecting(datetime.now(UTC))
            except HoldsUnavailable as exc:
                if new_audit is not None:
                    new_audit.close()
                    new_audit = None
                self._reject(
                    "holds",
                    file_sha256(new.holds_path) if new.holds_path.is_file() else None,
                    max(1, len(exc.issues)),
                    exc,
                )
                return False
            self._apply(new, audit, watcher)
            return True
        except Exception as exc:
            if new_audit is not None and new_audit is not self.audit:
                new_audit.close()
            log.error(
                "reload failed unexpectedly", error=type(exc).__name__, exc_info=not isinstance(exc, RetentiondError)
            )
            self._reject("config", file_sha256(self.config_path), 1, exc)
            return False
        finally:
            sdnotify.notify("READY=1", f"STATUS={self.status_line()}")

    def _keys_changed(self, new: LoadedConfig) -> bool:
        old_a, new_a = self.loaded.settings.audit, new.settings.audit
        names = [k for k in type(old_a).model_fields if k.startswith(("hmac_key", "signing_key"))]
        return any(getattr(old_a, k) != getattr(new_a, k) for k in names)

    def _apply(self, new: LoadedConfig, audit: AuditHandles, watcher: HoldWatcher) -> None:
        old = self.loaded
        old_audit = self.audit
        with self._holds_lock:
            self.loaded = new
            self.audit = audit
            self.watcher = watcher
        if audit is not old_audit and old_audit is not None:
            old_audit.close()
        if (ledger_url(new), new.settings.audit.ledger_id, new.state_dir) != (
            ledger_url(old),
            old.settings.audit.ledger_id,
            old.state_dir,
        ):
            if self.locks is not None:
                self.locks.close()
            self.locks = runner_locks(ledger_url(new), new.settings.audit.ledger_id, new.state_dir)
            self.state = ScheduleState(new.state_dir)
        removed = [c for c in old.settings.categories if c not in new.settings.categories]
        self.metrics.forget_categories(removed)
        self.metrics.init_config(new)
        self._apply_specs(job_specs(new, self.tick_seconds))
        self._update_next_runs()
        self.status.last_probe, self.status.probe_ok = time.monotonic(), True
        self._audit_loaded(new)
        self._mark_reload(True)
        self.metrics.reloads.labels("accepted").inc()
        log.info(
            "reload applied",
            config_sha256=new.sha256,
            previous_sha256=old.sha256,
            categories=len(new.settings.categories),
            removed=len(removed),
        )

    def _reject(self, source: str, sha: str | None, issues: int, exc: Exception) -> None:
        self._audit_rejected(source, sha, issues)
        self._mark_reload(False)
        self.metrics.reloads.labels("rejected").inc()
        # Issue messages name paths and keys of the file, never secrets; the count goes to the ledger.
        log.error(
            "reload refused: keeping the running configuration",
            source=source,
            file_sha256=sha,
            issues=issues,
            error=type(exc).__name__,
            detail=str(exc),
        )

    def _mark_reload(self, ok: bool) -> None:
        self.metrics.reload_ok.set(1 if ok else 0)
        if ok:
            self.metrics.reload_time.set(time.time())
        self.status.last_reload = "ok" if ok else "rejected"

    def _audit_loaded(self, loaded: LoadedConfig) -> None:
        assert self.audit is not None and self.watcher is not None
        # The watcher's current reading (it has no public accessor); ids only, never subjects.
        holds = tuple(sorted(h.id for h in getattr(self.watcher, "_holds", ())))
        self.audit.ledger.append(
            ConfigLoaded(
                config_sha256=loaded.sha256,
                holds_sha256=self.watcher.digest,
                categories=tuple(loaded.settings.categories),
                holds=holds,
            )
        )

    def _audit_rejected(self, source: str, sha: str | None, issues: int) -> None:
        if self.audit is None:
            return
        try:
            self.audit.ledger.append(ConfigRejected(source=source, file_sha256=sha, issue_count=issues))
        except RetentiondError as exc:
            log.error("could not audit a rejected file", error=type(exc).__name__)
