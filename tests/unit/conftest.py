"""Fixtures of the hub's API tests (a module that needs other ``clock`` / ``hub`` / ``api``
fixtures defines its own, which win)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.unit.hub_fixtures import Clock

from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.store.base import Store
from gpufleet.store.task_records import TaskRecords


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(store: Store, clock: Clock) -> Hub:
    assert isinstance(store, TaskRecords)
    return Hub(store, clock=clock)


@pytest.fixture
def api(hub: Hub) -> TestClient:
    return TestClient(create_hub_app(hub))
