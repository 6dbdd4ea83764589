"""gpufleet: watch GPUs and the machines around them, keep their history, explain their use.

The public Python API loads on first use, so ``import gpufleet`` stays cheap and
``gpufleet.collectors`` imports with nothing but nvidia-ml-py and psutil installed:

- ``ResourceManager``, ``ResourceLimits``, ``ResourceMetrics``, ``LimitViolation``,
  ``ResourceLimitExceeded``, ``create_resource_manager``: watch this process (or the
  machine) from inside a program (``gpufleet.resources``).
- ``Client``, ``AsyncClient``, ``GpufleetError``, ``ApiError``: talk to an agent or a hub
  over HTTP (``gpufleet.client``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ResourceManager": "gpufleet.resources",
    "ResourceLimits": "gpufleet.resources",
    "ResourceMetrics": "gpufleet.resources",
    "LimitViolation": "gpufleet.resources",
    "ResourceLimitExceeded": "gpufleet.resources",
    "create_resource_manager": "gpufleet.resources",
    "Client": "gpufleet.client",
    "AsyncClient": "gpufleet.client",
    "GpufleetError": "gpufleet.client",
    "ApiError": "gpufleet.client",
}

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "GpufleetError",
    "LimitViolation",
    "ResourceLimitExceeded",
    "ResourceLimits",
    "ResourceManager",
    "ResourceMetrics",
    "__version__",
    "create_resource_manager",
]

if TYPE_CHECKING:
    from gpufleet.client import ApiError, AsyncClient, Client, GpufleetError
    from gpufleet.resources import (
        LimitViolation,
        ResourceLimitExceeded,
        ResourceLimits,
        ResourceManager,
        ResourceMetrics,
        create_resource_manager,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gpufleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
