"""How kombu names (queues, exchanges) become Cairn names (topics, groups).

Cairn names are 1-249 characters of ``[A-Za-z0-9._-]``, not ``.`` or ``..``, and must not begin
with ``__``. A kombu name that is already valid is used unchanged (queue ``celery`` is topic
``celery``). Any other name (Celery's pidbox queues contain ``@``: ``celery@host.celery.pidbox``)
has each invalid character replaced by ``_`` and gets ``-`` plus 10 hex digits of its SHA-1
appended, so two different kombu names never share a topic.
"""

from __future__ import annotations

import hashlib
import re

NAME_LEN_MAX = 249
_VALID = re.compile(r"[A-Za-z0-9._-]+")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def is_valid(name: str) -> bool:
    return (
        0 < len(name) <= NAME_LEN_MAX
        and _VALID.fullmatch(name) is not None
        and name not in (".", "..")
        and not name.startswith("__")
    )


def cairn_name(name: str) -> str:
    """The Cairn topic/group name for a kombu name (identity when already valid)."""
    if is_valid(name):
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    safe = _INVALID_CHAR.sub("_", name).lstrip("_") or "q"
    return f"{safe[: NAME_LEN_MAX - 11]}-{digest}"


def prefixed(prefix: str, name: str) -> str:
    """``prefix + name`` made valid (used for groups and fan-out topics)."""
    return cairn_name(prefix + name)
