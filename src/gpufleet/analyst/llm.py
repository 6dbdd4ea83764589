"""The optional LLM: an OpenAI-compatible chat endpoint that widens what is understood and
how answers read, and never supplies a number.

Two uses, both optional and both checked:

* :meth:`LlmClient.route` is asked only when the offline understanding gives up (intent
  ``help``). The model gets one tool, ``answer_question``, whose arguments are an intent and
  entities; ``tool_choice`` is not sent (Ollama and llama.cpp limit it), so a reply without a
  tool call is simply no help. Arguments are validated against the names that have data: an
  unknown namespace, a made-up intent or a bad window discards the proposal.
* :meth:`LlmClient.reword` may rephrase a finished answer. The new text is kept only if every
  number in it is one of the numbers of the data behind the answer (:func:`numbers_backed`);
  otherwise the offline wording stands.

Any failure (no endpoint, timeout, HTTP error, malformed JSON, arguments of the wrong shape)
means the offline result is used. Both calls return ``(result, error)``: the error says what
happened, for the reply's trace. Nothing is kept on the client between calls, so one client
serves concurrent requests.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from gpufleet.analyst.catalog import Catalog
from gpufleet.analyst.intents import INTENTS
from gpufleet.analyst.timerange import DAY_S, TimeRange
from gpufleet.analyst.understand import Entities, Understanding
from gpufleet.settings import LlmSettings

ROUTE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "answer_question",
        "description": "Answer a question about GPU usage from the recorded history.",
        "parameters": {
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": list(INTENTS)},
                "time_range_days": {
                    "type": "number",
                    "description": "how many days back from now (default 7)",
                },
                "cluster": {"type": "string"},
                "namespace": {"type": "string"},
                "user": {"type": "string"},
                "workload": {"type": "string"},
                "node": {"type": "string"},
                "metric": {"type": "string", "enum": ["utilization", "allocation_rate"]},
                "granularity": {"type": "string", "enum": ["hour", "day"]},
            },
            "required": ["intent"],
        },
    },
}
_LEVELS = ("cluster", "namespace", "user", "workload", "node")


class LlmUnavailableError(RuntimeError):
    """The endpoint did not answer usably (the message says why)."""


@dataclass(frozen=True, slots=True)
class LlmConfig:
    """Where the endpoint is; see :class:`gpufleet.settings.LlmSettings`."""

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 8.0


class LlmClient:
    """Calls to one OpenAI-compatible endpoint (``POST {url}/chat/completions``)."""

    def __init__(self, config: LlmConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.Client(timeout=config.timeout_s, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "temperature": 0}
        if tools:
            body["tools"] = tools
        try:
            r = self._http.post(f"{self.config.url}/chat/completions", json=body)
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError) as exc:
            # InvalidURL and UnicodeError: a malformed url setting (not HTTPError subclasses).
            raise LlmUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code != 200:
            raise LlmUnavailableError(f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            message = r.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmUnavailableError(f"malformed reply: {r.text[:200]}") from exc
        if not isinstance(message, dict):
            raise LlmUnavailableError("malformed reply: message is not an object")
        return message

    # ---- understanding ----------------------------------------------------------------------

    def route(
        self, question: str, catalog: Catalog, now_s: float, language: str
    ) -> tuple[Understanding | None, str | None]:
        """An understanding proposed by the model and valid against ``catalog`` (or None),
        and what went wrong when there is none."""
        system = (
            "You route questions about GPU usage to the tool answer_question. Intents: "
            "trend (how a metric evolved), compare (two windows or two entities), drilldown "
            "(why something changed, which workloads or users), realtime (GPUs in use now), "
            "metadata (which clusters/namespaces/users exist), waste (idle GPU-hours and "
            "cost), recommend (what to change), alerts, help (anything else). Use only these "
            f"names. Clusters: {', '.join(catalog.clusters)}. Namespaces: "
            f"{', '.join(catalog.namespaces)}. Users: {', '.join(catalog.users[:50])}. "
            f"Nodes: {', '.join(catalog.nodes[:50])}. Never invent numbers."
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        try:
            message = self._chat(messages, [ROUTE_TOOL])
        except LlmUnavailableError as exc:
            return None, str(exc)
        calls = message.get("tool_calls") or []
        if not calls:
            return None, "the model answered without calling answer_question"
        try:
            args = _tool_arguments(calls)
            return _validated(args, catalog, now_s, language), None
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            return None, f"bad tool arguments: {exc}"

    # ---- wording ------------------------------------------------------------------------------

    def reword(
        self, question: str, answer: str, data: object, language: str
    ) -> tuple[str | None, str | None]:
        """The answer rephrased by the model if every number in it is backed by ``data``
        (else None), and why it was not when it is not."""
        lang = "Chinese" if language == "zh" else "English"
        messages = [
            {
                "role": "system",
                "content": "Rewrite the answer to the user's question in clear, friendly "
                f"{lang}, in at most three sentences. Use only numbers that appear in the "
                "answer; do not compute or add any.",
            },
            {"role": "user", "content": f"Question: {question}\nAnswer: {answer}"},
        ]
        try:
            message = self._chat(messages, None)
        except LlmUnavailableError as exc:
            return None, str(exc)
        text = message.get("content")
        if not isinstance(text, str) or not text.strip():
            return None, "the model returned no text"
        if not numbers_backed(text, [answer, data]):
            return None, "the rewording had numbers that are not in the data; kept the original"
        return text.strip(), None


def _tool_arguments(calls: object) -> Mapping[str, Any]:
    """The arguments of the ``answer_question`` call, checked to be a JSON object."""
    if not isinstance(calls, list) or not isinstance(calls[0], Mapping):
        raise ValueError("tool_calls is not a list of objects")
    fn = calls[0].get("function")
    if not isinstance(fn, Mapping) or fn.get("name") != "answer_question":
        name = fn.get("name") if isinstance(fn, Mapping) else fn
        raise ValueError(f"unknown tool {name!r}")
    raw = fn.get("arguments") or "{}"
    args = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(args, Mapping):
        raise ValueError(f"arguments must be a JSON object, got {type(args).__name__}")
    return args


def _validated(
    args: Mapping[str, Any], catalog: Catalog, now_s: float, language: str
) -> Understanding:
    intent = args.get("intent")
    if intent not in INTENTS:
        raise ValueError(f"intent {intent!r} is not one of {', '.join(INTENTS)}")
    values: dict[str, str | None] = {}
    for level in _LEVELS:
        v = args.get(level)
        if v in (None, ""):
            values[level] = None
            continue
        if not isinstance(v, str) or v not in catalog.values(level):
            raise ValueError(f"{level} {v!r} has no data")
        values[level] = str(v)
    days = args.get("time_range_days", 7)
    if (
        isinstance(days, bool)
        or not isinstance(days, int | float)
        or math.isnan(days)
        or not 0 < float(days) <= 365
    ):
        raise ValueError(f"time_range_days {days!r} must be a number of days up to 365")
    metric = args.get("metric")
    if metric not in (None, "utilization", "allocation_rate"):
        raise ValueError(f"metric {metric!r}")
    granularity = args.get("granularity")
    if granularity not in (None, "hour", "day"):
        raise ValueError(f"granularity {granularity!r}")
    rng = TimeRange(now_s - float(days) * DAY_S, now_s, f"past {float(days):g} days")
    entities = Entities(
        time_range=rng,
        metric=metric,
        granularity=granularity,
        **values,  # type: ignore[arg-type]
    )
    lang: Literal["en", "zh"] = "zh" if language == "zh" else "en"
    return Understanding(intent=str(intent), entities=entities, language=lang, cues=("llm",))


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.\-])[-+]?\d[\d,]*(?:\.\d+)?(?![A-Za-z0-9_\-]|\.\d)")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2})?)?Z?)?")


def _values(value: object, out: set[float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            out.update((float(value), float(value) * 100.0))
    elif isinstance(value, str):
        for m in _NUMBER.finditer(_ISO.sub(" ", value)):
            out.add(float(m.group(0).replace(",", "")))
    elif isinstance(value, Mapping):
        for v in value.values():
            _values(v, out)
    elif isinstance(value, Iterable):
        items = list(value)
        out.add(float(len(items)))
        for v in items:
            _values(v, out)


def numbers_backed(text: str, sources: object) -> bool:
    """Whether every number in ``text`` (ISO times aside) is, to its shown precision, a
    number of ``sources`` (the original answer and the data behind it)."""
    known: set[float] = set()
    _values(sources, known)
    for m in _NUMBER.finditer(_ISO.sub(" ", text)):
        token = m.group(0).replace(",", "").lstrip("+")
        decimals = len(token.split(".")[1]) if "." in token else 0
        value = abs(float(token))
        tolerance = 0.5 * 10.0**-decimals + 1e-9
        if not any(abs(abs(k) - value) <= tolerance for k in known):
            return False
    return True


def client_from(settings: LlmSettings) -> LlmClient | None:
    """The client the settings describe, or None when no LLM is configured."""
    if not settings.url or not settings.model:
        return None
    return LlmClient(
        LlmConfig(
            url=settings.url,
            model=settings.model,
            api_key=settings.api_key,
            timeout_s=settings.timeout_s,
        )
    )
