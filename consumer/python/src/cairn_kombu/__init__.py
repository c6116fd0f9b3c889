"""cairn-kombu: a kombu transport (``cairn://``, ``cairns://``) for the Cairn message store.

Importing this package registers the transport aliases with kombu, so
``kombu.Connection("cairn://127.0.0.1:7420")`` and
``Celery(broker="cairn://127.0.0.1:7420")`` work. ``cairn_kombu.transport`` (the transport
itself) is imported only when a connection is made.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["register", "__version__"]


def register() -> None:
    """Registers ``cairn`` and ``cairns`` with kombu (idempotent; done on import)."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault("cairn", "cairn_kombu.transport:Transport")
    TRANSPORT_ALIASES.setdefault("cairns", "cairn_kombu.transport:SSLTransport")


register()
