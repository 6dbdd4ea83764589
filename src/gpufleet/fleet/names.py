"""Names the hub accepts for clusters, nodes, pools, groups, zones and batch ids."""

from __future__ import annotations

from gpufleet.fleet.errors import HubRequestError

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def check_name(what: str, value: object) -> str:
    """``value`` when it is 1-200 letters, digits and ``- _ . :``.

    Raises:
        HubRequestError: anything else (422), naming ``what``.
    """
    if not isinstance(value, str) or not value or len(value) > 200 or set(value) - _NAME_CHARS:
        raise HubRequestError(
            f"{what} must be 1-200 characters of letters, digits and - _ . : (got {value!r})"
        )
    return value
