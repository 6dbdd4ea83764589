"""Node health from what the hub heard, and hub tokens (hashed, scoped, expiring)."""

from __future__ import annotations

import dataclasses

import pytest

from gpufleet.fleet.health import Heard, node_health
from gpufleet.fleet.tokens import TokenError, new_token, token_id, verify

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("heard", "status", "reason"),
    [
        (Heard(NOW - 5, NOW - 5), "healthy", None),
        (Heard(NOW - 31, NOW - 5), "unreachable", "no heartbeat for 31 s (timeout 30 s)"),
        (Heard(None, None), "unreachable", "never sent a heartbeat"),
        (Heard(NOW - 5, NOW - 5, gpus_lost=1), "degraded", "1 GPU lost"),
        (Heard(NOW - 5, NOW - 5, gpu_errors=3), "degraded", "3 GPU errors"),
        (Heard(NOW - 5, NOW - 500), "degraded", "no samples for 500 s"),
        (Heard(NOW - 5, None), "degraded", "no samples received yet"),
        (Heard(NOW - 5, NOW - 5, drained=True, drain_reason="maintenance"), "drained", None),
        # Drained wins over silence: an operator's decision is not undone by an outage.
        (Heard(NOW - 500, None, drained=True), "drained", "drained: by an operator"),
    ],
)
def test_node_health(heard: Heard, status: str, reason: str | None) -> None:
    h = node_health(heard, NOW)
    assert h.status == status
    if reason is not None:
        assert reason in h.reasons
    assert (h.reasons == ()) == (status == "healthy")


def test_the_unreachable_timeout_is_configurable() -> None:
    assert node_health(Heard(NOW - 20, NOW - 5), NOW, unreachable_after_s=10).status == (
        "unreachable"
    )


def test_a_token_verifies_only_with_its_secret_scope_and_time() -> None:
    text, record = new_token("ci", ["submit"], now_s=NOW, ttl_s=60)
    assert text.startswith(f"gf_{record.id}_")
    assert text.split("_", 2)[2] not in repr(record)  # only the hash is kept
    assert verify(text, record, "submit", NOW) is record
    assert token_id(text) == record.id
    with pytest.raises(TokenError, match="lacks the 'admin' scope"):
        verify(text, record, "admin", NOW)
    with pytest.raises(TokenError, match="expired"):
        verify(text, record, "submit", NOW + 60)
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    with pytest.raises(TokenError, match="wrong secret"):
        verify(forged, record, "submit", NOW)
    with pytest.raises(TokenError, match="unknown token"):
        verify(text, None, "submit", NOW)
    with pytest.raises(TokenError, match="not a gpufleet token"):
        verify("hunter2", record, "submit", NOW)
    with pytest.raises(TokenError, match="was revoked"):
        verify(text, dataclasses.replace(record, revoked_s=NOW), "submit", NOW)


def test_admin_implies_every_scope() -> None:
    text, record = new_token("root", ["admin"], now_s=NOW)
    for scope in ("read", "submit", "node-join"):
        assert verify(text, record, scope, NOW) is record


@pytest.mark.parametrize(
    ("scopes", "ttl", "why"),
    [
        (["root"], None, "unknown scope"),
        ([], None, "at least one scope"),
        (["read"], 0, "positive"),
    ],
)
def test_bad_token_requests_say_what_to_fix(scopes: list[str], ttl: float | None, why: str) -> None:
    with pytest.raises(TokenError, match=why):
        new_token("x", scopes, now_s=NOW, ttl_s=ttl)
