"""A small, thread-safe client for the parts of Cairn's HTTP API the transport uses.

One ``urllib3.PoolManager`` per client: keep-alive connections are pooled and shared by the
threads of one process (the consuming thread, the long-poll fetchers, the ack batcher and the
lease keeper). A client must not be used across ``fork()``: the transport makes a new one in
each process.

Errors are typed so kombu and Celery can tell them apart:

* :class:`CairnConnectionError` -- the server could not be reached or answered with a 5xx
  status; listed in the transport's ``connection_errors`` so Celery's reconnect/retry logic
  applies.
* :class:`CairnError` -- the server answered with a 4xx ``{"code", "message"}`` error; listed in
  ``channel_errors``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

import urllib3
from kombu.exceptions import ChannelError
from kombu.exceptions import ConnectionError as KombuConnectionError

#: Longest long-poll the server accepts (API: ``wait_ms`` at most 30000).
WAIT_MS_MAX = 30_000


class CairnError(ChannelError):
    """The server refused a request (4xx): carries the API error ``code`` and HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str, request: str = ""):
        self.status = status
        self.code = code
        self.request = request
        super().__init__(f"{request}: {status} {code}: {message}" if request else f"{status} {code}: {message}")


class CairnConnectionError(KombuConnectionError):
    """The server is unreachable, timed out, or failed with a 5xx status."""


class CairnClient:
    """Calls Cairn's HTTP API. Thread-safe; one per process."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        connect_timeout: float = 4.0,
        read_timeout: float = 30.0,
        pool_maxsize: int = 16,
        ssl_options: dict[str, Any] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._headers = {"Accept": "application/json", "User-Agent": "cairn-kombu/0.1"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        retries = urllib3.Retry(
            total=2, connect=2, read=1, status=0, other=0, redirect=0,
            allowed_methods=None, backoff_factor=0.1, raise_on_status=False,
        )
        self._http = urllib3.PoolManager(
            num_pools=4, maxsize=pool_maxsize, block=False, retries=retries, **(ssl_options or {})
        )

    def close(self) -> None:
        self._http.clear()

    # -- plumbing ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        allow: Iterable[int] = (),
    ) -> tuple[int, Any]:
        """Sends one request; returns ``(status, parsed JSON body or None)``.

        Statuses in ``allow`` are returned instead of raised (e.g. 404, 409).
        """
        hdrs = dict(self._headers)
        if headers:
            hdrs.update(headers)
        data = raw
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            hdrs["Content-Type"] = "application/json"
        elif raw is not None:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        url = self.base_url + path
        t = urllib3.Timeout(connect=self.connect_timeout, read=timeout if timeout is not None else self.read_timeout)
        what = f"{method} {url}"
        try:
            resp = self._http.request(method, url, body=data, headers=hdrs, timeout=t, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CairnConnectionError(f"cannot reach Cairn at {self.base_url} ({what}): {reason}") from exc
        status = resp.status
        parsed = None
        if resp.data:
            try:
                parsed = json.loads(resp.data)
            except ValueError:
                parsed = None
        if 200 <= status < 300 or status in allow:
            return status, parsed
        code = parsed.get("code", "unknown") if isinstance(parsed, dict) else "unknown"
        message = parsed.get("message", "") if isinstance(parsed, dict) else resp.data[:200].decode("utf-8", "replace")
        if status >= 500:
            raise CairnConnectionError(f"Cairn at {self.base_url} failed {what}: {status} {code}: {message}")
        raise CairnError(status, code, message, what)

    # -- service and topics ------------------------------------------------------------------

    def health(self) -> None:
        status, body = self.request("GET", "/v1/health", timeout=self.connect_timeout, allow=(404,))
        if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
            raise CairnConnectionError(
                f"{self.base_url} does not look like a Cairn server: GET /v1/health answered {status} {body!r}"
            )

    def create_topic(self, name: str, **config: Any) -> bool:
        """Creates a topic; returns False if it already existed."""
        status, _ = self.request("POST", "/v1/topics", {"name": name, **config}, allow=(409,))
        return status != 409

    def topic_exists(self, name: str) -> bool:
        status, _ = self.request("GET", f"/v1/topics/{name}", allow=(404,))
        return status == 200

    def topic(self, name: str) -> dict | None:
        status, body = self.request("GET", f"/v1/topics/{name}", allow=(404,))
        return body if status == 200 else None

    def delete_topic(self, name: str) -> None:
        self.request("DELETE", f"/v1/topics/{name}", allow=(404,))

    def produce_one(self, topic: str, value: bytes) -> dict:
        """Appends one message (raw bytes); returns its ``{"partition","offset","timestamp"}``.

        An ``Idempotency-Key`` makes the client's own retries (a reset keep-alive connection)
        safe: the server answers a repeat with the original offsets and appends nothing.
        """
        _, body = self.request(
            "POST", f"/v1/topics/{topic}/messages", raw=value,
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        return body["offsets"][0]

    def produce_json(self, topic: str, messages: list[dict]) -> list[dict]:
        _, body = self.request(
            "POST", f"/v1/topics/{topic}/messages", {"messages": messages},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        return body["offsets"]

    def read(self, topic: str, partition: int, offset: int, max_messages: int = 10_000) -> dict:
        status, body = self.request(
            "GET",
            f"/v1/topics/{topic}/partitions/{partition}/messages?offset={offset}&max_messages={max_messages}",
            allow=(404,),
        )
        return body if status == 200 else {"messages": [], "next_offset": offset, "end_offset": offset}

    # -- consumer groups ---------------------------------------------------------------------

    def configure_group(self, group: str, **config: Any) -> None:
        self.request("PUT", f"/v1/groups/{group}", config)

    def delete_group(self, group: str) -> None:
        self.request("DELETE", f"/v1/groups/{group}", allow=(404,))

    def group_offsets(self, group: str, topic: str) -> list[dict] | None:
        status, body = self.request("GET", f"/v1/groups/{group}/offsets?topic={topic}", allow=(404,))
        return body.get("offsets", []) if status == 200 else None

    def reset_group(self, group: str, topic: str, to: Any = "latest") -> list[dict]:
        _, body = self.request("POST", f"/v1/groups/{group}/reset", {"topic": topic, "to": to})
        return (body or {}).get("offsets", [])

    def fetch(
        self, group: str, topic: str, max_messages: int, wait_ms: int, ack_timeout_ms: int, consumer: str
    ) -> list[dict]:
        wait_ms = max(0, min(int(wait_ms), WAIT_MS_MAX))
        _, body = self.request(
            "POST",
            f"/v1/groups/{group}/topics/{topic}/fetch",
            {
                "max_messages": max_messages,
                "wait_ms": wait_ms,
                "ack_timeout_ms": ack_timeout_ms,
                "consumer": consumer,
            },
            timeout=wait_ms / 1000.0 + self.read_timeout,
        )
        return body.get("messages", []) if body else []

    def settle(self, op: str, group: str, topic: str, refs: list[dict], **extra: Any) -> None:
        """``op`` is ``ack``, ``nack``, ``extend`` or ``reject``; ``refs`` are ``{"partition","offset"}``."""
        self.request("POST", f"/v1/groups/{group}/topics/{topic}/{op}", {"messages": refs, **extra})
