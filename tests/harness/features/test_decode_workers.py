"""How many decode worker processes a job gets (``$GENBENCH_DECODE_WORKERS`` or automatic)."""
from __future__ import annotations

import pytest

from genbench.errors import UserError
from genbench.features import decode_workers


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(decode_workers.WORKERS_ENV, "3")
    assert decode_workers.default_workers(10) == 3
    monkeypatch.setenv(decode_workers.WORKERS_ENV, "many")
    with pytest.raises(UserError, match="GENBENCH_DECODE_WORKERS"):
        decode_workers.default_workers(10)
    monkeypatch.delenv(decode_workers.WORKERS_ENV)
    assert decode_workers.default_workers(10) == 0  # a small job: threads
    assert decode_workers.default_workers(10**6) in (0, decode_workers.cpu_count())
