"""The installed package's ``cairn_kombu.pth``: ``cairn://`` works in a fresh interpreter that
never imports ``cairn_kombu`` itself, and the hook costs nothing until kombu is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest


def installed_pth() -> Path | None:
    p = Path(sysconfig.get_paths()["purelib"]) / "cairn_kombu.pth"
    return p if p.exists() else None


@pytest.fixture(autouse=True)
def needs_pth():
    if installed_pth() is None:
        if os.environ.get("CI"):
            pytest.fail("cairn_kombu.pth is not installed: .ci/run must `pip install consumer/python` (not -e)")
        pytest.skip("cairn_kombu.pth not installed (an editable install has none): pip install consumer/python")


def fresh(code: str, **env) -> subprocess.CompletedProcess:
    """Runs ``code`` in a new interpreter of this venv, outside the tests' directory."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env},
    )


def test_celery_app_works_without_importing_cairn_kombu(cairnd):
    code = f"""
import sys
assert "kombu" not in sys.modules and "cairn_kombu" not in sys.modules, "imported at start"
from celery import Celery
app = Celery("fresh", broker="{cairnd.url}", set_as_current=False)
with app.connection_for_write() as conn:
    conn.ensure_connection(max_retries=1)
    assert type(conn.transport).__module__ == "cairn_kombu.transport", type(conn.transport)
    q = conn.SimpleQueue("pth-fresh")
    q.put({{"hello": "pth"}})
    m = q.get(timeout=10)
    m.ack()
    print("GOT", m.payload)
    q.close()
"""
    out = fresh(code)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "GOT {'hello': 'pth'}" in out.stdout


def test_hook_is_lazy_and_can_be_turned_off():
    out = fresh("import sys; print(sorted(m for m in sys.modules if 'kombu' in m))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['_cairn_kombu_hook']"  # neither kombu nor cairn_kombu
    out = fresh("from kombu.transport import TRANSPORT_ALIASES as A; print(A.get('cairn'), A.get('cairns'))")
    assert out.stdout.split() == ["cairn_kombu.transport:Transport", "cairn_kombu.transport:SSLTransport"], out
    out = fresh("from kombu.transport import TRANSPORT_ALIASES as A; print(A.get('cairn'))", CAIRN_KOMBU_NO_PTH="1")
    assert out.stdout.strip() == "None", out
