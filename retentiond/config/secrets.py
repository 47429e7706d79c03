"""Resolve secrets given as ``*_env``, ``*_credential`` or ``*_file`` (SPEC §3).

Secrets are read when needed, never stored in models that ``config show`` prints, and never
echoed in errors: a message names the variable or credential, not its content.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from retentiond.errors import ConfigError, ConfigIssue


def credential_path(name: str) -> Path:
    """Return ``$CREDENTIALS_DIRECTORY/name`` (systemd ``LoadCredential=``).

    Raises:
        ConfigError: CREDENTIALS_DIRECTORY is not set.
    """
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            [
                ConfigIssue(
                    "", f"credential {name!r} requested but CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"
                )
            ]
        )
    return Path(directory) / name


def read_secret(model: BaseModel, field: str, path: str, *, base_dir: Path | None = None) -> bytes | None:
    """Return the secret configured as ``field``/``field_env``/``field_credential``/``field_file`` on ``model``.

    ``path`` is the dotted path of ``model`` for messages (``audit``). Returns None when none is set.

    Raises:
        ConfigError: the variable is unset, or the credential or file cannot be read.
    """
    fields = type(model).model_fields
    inline = getattr(model, field, None) if field in fields else None
    if inline is not None:
        return str(inline).encode()
    env = getattr(model, f"{field}_env", None) if f"{field}_env" in fields else None
    if env is not None:
        value = os.environ.get(env)
        if value is None or value == "":
            raise ConfigError([ConfigIssue(f"{path}.{field}_env", f"environment variable {env} is not set")])
        return value.encode()
    credential = getattr(model, f"{field}_credential", None) if f"{field}_credential" in fields else None
    file = getattr(model, f"{field}_file", None) if f"{field}_file" in fields else None
    target: Path | None = None
    key_path = ""
    if credential is not None:
        try:
            target = credential_path(credential)
        except ConfigError as exc:
            raise ConfigError([ConfigIssue(f"{path}.{field}_credential", exc.issues[0].message)]) from None
        key_path = f"{path}.{field}_credential"
    elif file is not None:
        target = Path(file)
        if base_dir is not None and not target.is_absolute():
            target = base_dir / target
        key_path = f"{path}.{field}_file"
    if target is None:
        return None
    try:
        return target.read_bytes().strip()
    except OSError as exc:
        raise ConfigError([ConfigIssue(key_path, f"cannot read {target}: {exc.strerror}")]) from None


def read_secret_text(model: BaseModel, field: str, path: str, *, base_dir: Path | None = None) -> str | None:
    """Return ``read_secret`` decoded as UTF-8 and stripped, or None."""
    raw = read_secret(model, field, path, base_dir=base_dir)
    return None if raw is None else raw.decode("utf-8").strip()


def redacted(data: object) -> object:
    """Return a copy of a plain config dump in which inline URLs lose any user info.

    Inline URLs never carry passwords (validation refuses them), but a URL's user name and
    query (``?sslkey=...``) are still not for screenshots.
    """
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            if key in ("url", "endpoint_url") and isinstance(value, str):
                out[key] = _redact_url(value)
            else:
                out[key] = redacted(value)
        return out
    if isinstance(data, list):
        return [redacted(v) for v in data]
    return data


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<redacted>"
    if parsed.username:
        parsed = parsed.set(username="***")
    if parsed.query:
        parsed = parsed.set(query={})
    return parsed.render_as_string(hide_password=True)
