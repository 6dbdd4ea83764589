"""Turning an endpoint's :class:`~gpufleet.client._core.Call` builder into a method of the
sync or the async client, so each endpoint is written once: its builder (arguments, checks,
path, parser) lives in an ``_ep_*`` module and both clients bind it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from gpufleet.client._core import Call

P = ParamSpec("P")
T = TypeVar("T")


class SyncRunner(Protocol):
    def _run(self, call: Call[T]) -> T: ...


class AsyncRunner(Protocol):
    async def _run(self, call: Call[T]) -> T: ...


def _with_self(method: Callable[..., Any], builder: Callable[..., Any]) -> None:
    """Give ``method`` the builder's name, docs and signature (plus ``self``, and the
    result type in place of ``Call[...]``), so ``help()`` shows what to pass and get."""
    functools.update_wrapper(method, builder)
    sig = inspect.signature(builder)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    returns = sig.return_annotation
    if isinstance(returns, str) and returns.startswith("Call[") and returns.endswith("]"):
        returns = returns[len("Call[") : -1]
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *sig.parameters.values()], return_annotation=returns
    )
    del method.__wrapped__  # type: ignore[attr-defined]


def sync_method(builder: Callable[P, Call[T]]) -> Callable[Concatenate[SyncRunner, P], T]:
    """A method of a sync group or client that sends ``builder(...)`` and returns its result."""

    def method(self: SyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(builder(*args, **kwargs))

    _with_self(method, builder)
    return method


def async_method(
    builder: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncRunner, P], Coroutine[Any, Any, T]]:
    """The async twin of :func:`sync_method`."""

    async def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(builder(*args, **kwargs))

    _with_self(method, builder)
    return method
