"""The analyst's tools over MCP (the ``mcp`` package, v2 API): ``gpufleet mcp``.

Seed 001's tools with its names and parameters (``query_gpu_usage_trend``,
``analyze_workload_history``, ``get_latest_snapshot``, ``get_workload_metadata``,
``get_available_clusters``, ``get_available_namespaces``, ``get_available_dimension_keys``),
then ``get_gpu_waste``, ``get_recommendations``, ``get_alerts`` and ``ask`` (the whole
analyst: a question in plain language, an answer with its data). Each returns the JSON the
:class:`~gpufleet.analyst.tools.Toolbox` returns, with the equivalent REST call, so any MCP
client (an IDE, an agent framework) can query a fleet's history. Served over stdio or
streamable HTTP.
"""

from __future__ import annotations

import difflib
import functools
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as McpToolError
from mcp.types import CallToolResult, InputRequiredResult
from mcp.types import Tool as McpTool

from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.scope import Scope
from gpufleet.analyst.engine import Analyst
from gpufleet.analyst.llm import LlmClient
from gpufleet.analyst.tools import Toolbox, data_now
from gpufleet.store.base import Store, StoreError

F = TypeVar("F", bound=Callable[..., Any])

INSTRUCTIONS = (
    "GPU usage history of a gpufleet store: utilization and allocation trends, workloads, "
    "the latest snapshot, idle GPU-hours and their cost, recommendations with expected "
    "savings, alerts. Times are UTC; windows are the last `time_range_days` days before the "
    "latest sample. Every result carries `api`: the gpufleet REST call giving the same data. "
    "`ask` answers a question in English or Chinese with the numbers behind it."
)


def _expected_errors(func: F) -> F:
    """Errors a caller can fix (a bad argument, an unknown namespace listing the known ones,
    a store that cannot answer) come back as the tool's error text, not as a crash."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, StoreError) as exc:
            raise McpToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


_DIMENSIONS = ("namespace", "user", "workload", "node", "gpu_model", "label")


def unknown_arguments_message(
    tool: str, arguments: dict[str, Any], known: Collection[str]
) -> str | None:
    """Why a call of ``tool`` with ``arguments`` it does not take is refused (None when it
    takes them all): each unknown one, a hint where one helps (``namespace`` on a trend is
    ``dimension`` + ``dimension_value``, a near miss of a parameter's name), and the tool's
    parameters."""
    unknown = sorted(set(arguments) - set(known))
    if not unknown:
        return None
    parts = []
    for name in unknown:
        hint = ""
        if name in _DIMENSIONS and "dimension" in known and "dimension_value" in known:
            value = arguments[name]
            shown = value if isinstance(value, str) else f"<the {name}>"
            hint = f" (use dimension='{name}' and dimension_value='{shown}')"
        elif close := difflib.get_close_matches(name, list(known), n=1):
            hint = f" (did you mean {close[0]!r}?)"
        parts.append(f"{name!r}{hint}")
    which = "argument" if len(unknown) == 1 else "arguments"
    valid = ", ".join(known) if known else "none"
    return f"{tool} has no {which} {', '.join(parts)}; its parameters: {valid}"


class StrictMCPServer(MCPServer):
    """An :class:`MCPServer` whose tools refuse arguments they do not take (the SDK's own
    argument models drop them silently, so a mistyped filter would answer for the whole
    fleet) and say so in their input schemas (``additionalProperties: false``)."""

    async def list_tools(self) -> list[McpTool]:
        """The tools, each input schema closed to arguments it does not name."""
        return [
            tool.model_copy(
                update={"input_schema": {**tool.input_schema, "additionalProperties": False}}
            )
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """As :meth:`MCPServer.call_tool`; an unknown argument is an error result naming it."""
        for tool in await super().list_tools():
            if tool.name == name:
                known = list(tool.input_schema.get("properties", {}))
                refused = unknown_arguments_message(name, arguments, known)
                if refused is not None:
                    raise McpToolError(refused)
                break
        return await super().call_tool(name, arguments, context)


def build_mcp_server(
    store: Store,
    *,
    idle_threshold_pct: float = 5.0,
    prices: PriceTable | None = None,
    clock: Callable[[], float] = time.time,
    llm: LlmClient | None = None,
) -> MCPServer:
    """An MCP server whose tools read ``store`` (one :class:`Toolbox` per call, at the
    latest sample's time)."""
    server = StrictMCPServer(name="gpufleet", instructions=INSTRUCTIONS)
    analyst = Analyst(
        store, idle_threshold_pct=idle_threshold_pct, prices=prices, clock=clock, llm=llm
    )

    def box() -> Toolbox:
        return Toolbox(
            store,
            now_s=data_now(store, clock()),
            idle_threshold_pct=idle_threshold_pct,
            prices=prices,
        )

    @server.tool(
        description="GPU utilization or allocation-rate trend over time, with a robust "
        "slope, the change against the window before, change points and a forecast. "
        "dimension: cluster, namespace, user, workload, node, gpu_model or label "
        "(dimension_value like namespace:ml-team); granularity: hour, day or week; "
        "metric_type: utilization, allocation_rate, idle_fraction or gpu_hours."
    )
    @_expected_errors
    def query_gpu_usage_trend(
        dimension: str = "cluster",
        granularity: str = "day",
        time_range_days: float = 7.0,
        dimension_value: str | None = None,
        metric_type: str = "utilization",
        cluster: str | None = None,
    ) -> dict[str, Any]:
        return (
            box()
            .query_gpu_usage_trend(
                dimension=dimension,
                granularity=granularity,
                time_range_days=time_range_days,
                dimension_value=dimension_value,
                metric_type=metric_type,
                cluster=cluster,
            )
            .wire()
        )

    @server.tool(
        description="Workloads of the window with GPU-hours, mean utilization and "
        "idle GPU-hours. kind: training, inference, notebook, batch; status: running "
        "or finished; sort_by: gpu_hours, mean_gpu_util_pct or idle_gpu_hours."
    )
    @_expected_errors
    def analyze_workload_history(
        time_range_days: float = 7.0,
        namespace: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        sort_by: str = "gpu_hours",
        limit: int = 10,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        return (
            box()
            .analyze_workload_history(
                time_range_days=time_range_days,
                namespace=namespace,
                kind=kind,
                status=status,
                sort_by=sort_by,
                limit=limit,
                cluster=cluster,
            )
            .wire()
        )

    @server.tool(
        description="The latest GPU allocation snapshot: GPUs reporting, allocated, "
        "allocation rate and mean utilization in the last two minutes of samples; a node, "
        "namespace, user or workload narrows it to the GPUs they hold."
    )
    @_expected_errors
    def get_latest_snapshot(
        cluster: str | None = None,
        node: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
        workload: str | None = None,
    ) -> dict[str, Any]:
        scope = Scope(cluster=cluster, node=node, namespace=namespace, user=user, workload=workload)
        return box().get_latest_snapshot(scope=scope).wire()

    @server.tool(
        description="Namespaces, users, workloads and workload kinds with GPU-time in the "
        "window, busiest first; of one namespace or user when given."
    )
    @_expected_errors
    def get_workload_metadata(
        cluster: str | None = None,
        time_range_days: float = 7.0,
        namespace: str | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        return (
            box()
            .get_workload_metadata(
                cluster=cluster, time_range_days=time_range_days, namespace=namespace, user=user
            )
            .wire()
        )

    @server.tool(description="Every cluster with data in the store.")
    @_expected_errors
    def get_available_clusters() -> dict[str, Any]:
        return box().get_available_clusters().wire()

    @server.tool(description="Namespaces with GPU allocation in the window, busiest first.")
    @_expected_errors
    def get_available_namespaces(
        time_range_days: float = 7.0, cluster: str | None = None
    ) -> dict[str, Any]:
        return (
            box().get_available_namespaces(time_range_days=time_range_days, cluster=cluster).wire()
        )

    @server.tool(
        description="Label (dimension) keys to filter or group by, with how many "
        "values each has. dimension_type: label or annotation."
    )
    @_expected_errors
    def get_available_dimension_keys(
        dimension_type: str = "label", time_range_days: float = 7.0, cluster: str | None = None
    ) -> dict[str, Any]:
        return (
            box()
            .get_available_dimension_keys(
                dimension_type=dimension_type, time_range_days=time_range_days, cluster=cluster
            )
            .wire()
        )

    @server.tool(
        description="Idle-allocated and unallocated GPU-hours and their cost per "
        "GPU model price, by namespace (or by workload within a namespace), with the "
        "top wasting workloads."
    )
    @_expected_errors
    def get_gpu_waste(
        time_range_days: float = 7.0,
        namespace: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        tools = box()
        return tools.get_gpu_waste(
            scope=Scope(cluster=cluster, namespace=namespace),
            window=tools.window(time_range_days),
            by="workload" if namespace else "namespace",
        ).wire()

    @server.tool(
        description="Recommendations (scale down/up, consolidate, MIG or sharing, "
        "right-size, reclaim idle) with evidence, expected monthly saving, confidence."
    )
    @_expected_errors
    def get_recommendations(
        time_range_days: float = 7.0,
        namespace: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        tools = box()
        return tools.get_recommendations(
            scope=Scope(cluster=cluster, namespace=namespace),
            window=tools.window(time_range_days),
        ).wire()

    @server.tool(
        description="Alerts raised in the window, newest first (unresolved ones are still active)."
    )
    @_expected_errors
    def get_alerts(time_range_days: float = 7.0, cluster: str | None = None) -> dict[str, Any]:
        tools = box()
        return tools.get_alerts(window=tools.window(time_range_days), cluster=cluster).wire()

    @server.tool(
        description="Ask the gpufleet analyst a question in English or Chinese; the "
        "reply has the answer, insights, the understood intent and entities, and the "
        "data behind every number. Pass session_id back to ask follow-ups."
    )
    @_expected_errors
    def ask(
        query: str, session_id: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]:
        return analyst.ask(query, session_id=session_id, cluster=cluster).wire()

    return server
