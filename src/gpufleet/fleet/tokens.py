"""Hub access tokens: random secrets shown once, stored only as a hash, with scopes and an
expiry (issue 5, "Access control").

A token reads ``gf_<id>_<secret>``: the id (8 hex digits) finds the stored record and names
the token in lists and logs; the secret (32 random bytes, URL-safe) is never stored, only
its SHA-256. The secret is long and random, so a plain hash suffices (no salt or slow hash
is needed against guessing) and verification compares digests in constant time.

Scopes: ``read`` (GET endpoints), ``submit`` (allocate, submit tasks), ``admin`` (tokens,
pools, drain; implies the others), ``node-join`` (an agent joining and pushing samples).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from gpufleet.store.hub_records import TokenRecord

SCOPES: tuple[str, ...] = ("read", "submit", "admin", "node-join")
_TOKEN = re.compile(r"gf_([0-9a-f]{8})_([A-Za-z0-9_\-]{20,})")


class TokenError(ValueError):
    """A token that is malformed, unknown, expired, revoked or lacks the scope asked for."""


def check_scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``scopes`` deduplicated in :data:`SCOPES` order; TokenError naming an unknown one."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise TokenError(
            f"unknown scope(s) {', '.join(unknown)}; use one or more of: {', '.join(SCOPES)}"
            if unknown
            else f"a token needs at least one scope: {', '.join(SCOPES)}"
        )
    return tuple(s for s in SCOPES if s in scopes)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(
    name: str,
    scopes: tuple[str, ...] | list[str],
    *,
    now_s: float,
    ttl_s: float | None = None,
    groups: tuple[str, ...] = (),
) -> tuple[str, TokenRecord]:
    """A new token: the text to hand out (shown once) and the record to store."""
    if ttl_s is not None and ttl_s <= 0:
        raise TokenError(f"a token's lifetime must be positive, got {ttl_s:g} s")
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        id=token_id,
        name=name,
        scopes=check_scopes(scopes),
        secret_sha256=_digest(secret),
        created_s=now_s,
        expires_s=None if ttl_s is None else now_s + ttl_s,
        groups=groups,
    )
    return f"gf_{token_id}_{secret}", record


def token_id(text: str) -> str:
    """The id part of a token; TokenError when it is not a gpufleet token at all."""
    m = _TOKEN.fullmatch(text.strip())
    if m is None:
        raise TokenError("not a gpufleet token (they look like gf_<8 hex>_<secret>)")
    return m.group(1)


def verify(text: str, record: TokenRecord | None, scope: str, now_s: float) -> TokenRecord:
    """``record`` when ``text`` is its token, valid now and allowed ``scope``.

    Raises:
        TokenError: why not (the message never repeats the secret).
    """
    m = _TOKEN.fullmatch(text.strip())
    if m is None:
        raise TokenError("not a gpufleet token (they look like gf_<8 hex>_<secret>)")
    if record is None or record.id != m.group(1):
        raise TokenError(f"unknown token {m.group(1)}")
    if not hmac.compare_digest(record.secret_sha256, _digest(m.group(2))):
        raise TokenError(f"wrong secret for token {record.id}")
    if record.revoked_s is not None:
        raise TokenError(f"token {record.id} was revoked")
    if record.expires_s is not None and now_s >= record.expires_s:
        raise TokenError(f"token {record.id} expired")
    if not record.allows(scope):
        raise TokenError(
            f"token {record.id} lacks the {scope!r} scope (it has: {', '.join(record.scopes)})"
        )
    return record
