"""The transport against a ``cairnd`` with bearer tokens and TLS: ``cairns://:TOKEN@host`` with
a CA for a self-signed certificate (made by ``trustme``), a wrong token (401), a token without
the scope (403), and a client that does not trust the certificate."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import trustme
from kombu import Connection
from kombu.exceptions import OperationalError

import cairn_kombu  # noqa: F401
from cairn_kombu.client import CairnConnectionError, CairnError

from conftest import Proc, cairnd_bin

ADMIN = "py-admin-token"
READER = "py-reader-token"


@pytest.fixture
def secure_cairnd(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    config = tmp_path / "cairnd.toml"
    tokens = [("ops", ADMIN, '["admin"]'), ("reader", READER, '["consume:*"]')]
    config.write_text("".join(
        f'[[auth.tokens]]\nname = "{n}"\nsha256 = "{hashlib.sha256(t.encode()).hexdigest()}"\nscopes = {s}\n'
        for n, t, s in tokens
    ))
    proc = Proc(
        [cairnd_bin(), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"), "--config", str(config),
         "--tls-cert", str(cert_pem), "--tls-key", str(key_pem)],
        name="cairnd-tls",
    )
    m = proc.wait_for(r"cairnd listening on (\S+)", timeout=60)
    port = int(m.group(1).rsplit(":", 1)[1])
    yield port, str(ca_pem)
    proc.stop()


def test_token_and_tls_round_trip(secure_cairnd):
    port, ca = secure_cairnd
    q = f"secure-{uuid.uuid4().hex[:8]}"
    tls = {"ssl": {"ca_certs": ca}}
    with Connection(f"cairns://:{ADMIN}@localhost:{port}", transport_options=tls) as conn:
        sq = conn.SimpleQueue(q)
        sq.put({"over": "tls"})
        m = sq.get(timeout=10)
        assert m.payload == {"over": "tls"}
        m.ack()
        sq.close()

    # The token as a transport option instead of the URL's password (on a fresh queue, so this
    # test depends only on auth and TLS).
    with Connection(f"cairns://localhost:{port}", transport_options={**tls, "token": ADMIN}) as conn:
        sq = conn.SimpleQueue(q + "-2")
        sq.put({"n": 2})
        assert sq.get(timeout=10).payload == {"n": 2}
        sq.close()


def test_wrong_token_and_missing_scope_are_refused(secure_cairnd):
    port, ca = secure_cairnd
    tls = {"ssl": {"ca_certs": ca}}
    with Connection(f"cairns://:wrong@localhost:{port}", transport_options=tls) as conn:
        with pytest.raises(CairnError) as e:
            conn.SimpleQueue(f"denied-{uuid.uuid4().hex[:8]}").put({"x": 1})
        assert (e.value.status, e.value.code) == (401, "unauthorized")
    # A consume-only token cannot declare (create) a queue's topic.
    with Connection(f"cairns://:{READER}@localhost:{port}", transport_options=tls) as conn:
        with pytest.raises(CairnError) as e:
            conn.SimpleQueue(f"denied-{uuid.uuid4().hex[:8]}").put({"x": 1})
        assert (e.value.status, e.value.code) == (403, "forbidden")


def test_untrusted_certificate_fails_to_connect(secure_cairnd):
    port, _ = secure_cairnd
    with Connection(f"cairns://:{ADMIN}@localhost:{port}") as conn:
        with pytest.raises((CairnConnectionError, OperationalError), match="CERTIFICATE_VERIFY_FAILED"):
            conn.ensure_connection(max_retries=1)
