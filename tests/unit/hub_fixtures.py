"""What the hub's API tests share: a clock a test moves by hand and bearer headers for a new
token. The ``clock``, ``hub`` and ``api`` fixtures built on them are in ``conftest.py``."""

from __future__ import annotations

from tests.unit.store_samples import T0

from gpufleet.fleet.hub import Hub


class Clock:
    """Wall clock a test moves by hand (starts an hour after ``T0``)."""

    def __init__(self) -> None:
        self.now = T0 + 3600.0

    def __call__(self) -> float:
        return self.now


def auth(hub: Hub, *scopes: str, name: str = "t") -> dict[str, str]:
    """``Authorization`` header of a new token with ``scopes``."""
    text, _ = hub.create_token(name, list(scopes))
    return {"Authorization": f"Bearer {text}"}
