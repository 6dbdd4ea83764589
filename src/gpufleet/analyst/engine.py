"""The analyst: a question in, an answer with its numbers out, in a persisted session.

``Analyst.ask`` understands the question offline (:mod:`~gpufleet.analyst.understand`), asks
for what is missing with the real options (seed 001 scenarios 5 and 6), calls the tools
(:mod:`~gpufleet.analyst.tools`) and phrases the results (:mod:`~gpufleet.analyst.answer`).
Each turn is stored in the store's database (SQLite or PostgreSQL) with what the next turn
needs to follow up, so "and last month?" works across processes and restarts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.scope import WORKLOAD_KEYS, Scope, Window
from gpufleet.analyst import answer as say
from gpufleet.analyst import answer_trend, answer_waste
from gpufleet.analyst.answer_drilldown import drilldown
from gpufleet.analyst.catalog import Catalog
from gpufleet.analyst.clarify import option_reply
from gpufleet.analyst.llm import LlmClient
from gpufleet.analyst.session_state import restore_understanding, save_understanding
from gpufleet.analyst.timerange import (
    DAY_S,
    TimeRange,
    default_range,
    find_time_ranges,
    previous_period,
    zh_number,
)
from gpufleet.analyst.tools import Toolbox, ToolError, ToolResult, data_now
from gpufleet.analyst.understand import Entities, Understanding, understand
from gpufleet.analyst.wording import sentence, window_label
from gpufleet.model import ChatTurn
from gpufleet.store.base import ChatTurnConflictError, Store

MAX_QUERY_CHARS = 2000
CATALOG_DAYS = 30.0
"""Names are recognized if they have data in the last 30 days (or the question's window)."""
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# Control characters (C0, DEL, C1) but tab and line breaks: a NUL would end up in the
# session's title and in every listing of it.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class AnalystError(ValueError):
    """A question or session the analyst cannot take; the message says what to fix."""


class UnknownSessionError(AnalystError):
    """A session id that the store does not hold (where one must exist)."""


class SessionBusyError(AnalystError):
    """Another process answered a question in the same session meanwhile; this turn was not
    saved (ask again: it then follows the other one)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: the shape ``--json`` and the chat endpoint return."""

    answer: str
    intent: str
    entities: dict[str, Any]
    clarification: dict[str, Any] | None
    insights: list[str]
    data: list[dict[str, Any]]
    session_id: str
    language: str
    follow_up: bool = False
    elapsed_ms: float = 0.0
    source: str = "offline"
    """``offline`` (rules) or ``llm`` (when an LLM shaped the understanding or wording)."""
    llm_note: str | None = None
    """Why the LLM's proposal or wording was not used (timeout, bad arguments, unbacked
    numbers), when one is configured."""

    def wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class _Turn:
    """What the engine works out before it phrases anything."""

    u: Understanding
    answer: str = ""
    insights: list[str] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    clarification: dict[str, Any] | None = None
    retry: str | None = None
    """Why a clarification is asked again (an answer that was no option)."""
    listed: tuple[str, list[str]] | None = None
    """A metadata answer's level and the names it listed, in order."""


def _held_scope(scope: Scope) -> bool:
    """A scope of holders (a namespace, user, workload or kind): no unallocated time."""
    return any(
        getattr(scope, k) is not None for k in ("namespace", "user", "workload", "workload_kind")
    )


_PICKABLE = ("cluster", "namespace", "user", "workload", "node", "gpu_model")


def _resolve_listed(text: str, listed: Mapping[str, Any], previous: Understanding) -> _Turn | None:
    """ "2" after a list ("list namespaces") asks about its second entry, over the list's
    window; None when ``text`` is not a number of the list."""
    options = [str(o) for o in listed.get("options", [])]
    level = str(listed.get("level", ""))
    choice = re.sub(
        r"^(第?)([一二两三四五六七八九十]{1,3})(?=个|号|$)",
        lambda z: z.group(1) + str(zh_number(z.group(2)) or z.group(2)),
        text.strip().rstrip(".。!！"),
    )
    m = re.fullmatch(r"(?:#|no\.?\s*|第)?\s*(\d{1,3})\s*(?:个|号)?", choice, re.IGNORECASE)
    if m is None or level not in _PICKABLE or not 1 <= int(m.group(1)) <= len(options):
        return None
    picked = options[int(m.group(1)) - 1]
    named: dict[str, Any] = {level: picked, "metadata_level": None}
    entities = dataclasses.replace(previous.entities, **named)
    u = dataclasses.replace(previous, intent="trend", entities=entities, follow_up=True)
    return _Turn(u)


_PAIR_OPTIONS = 20
"""At most this many entities are offered when asked which two to compare (busiest first)."""


def _resolve_pair(
    choice: str, options: list[str], level: str, previous: Understanding
) -> _Turn | None:
    """The comparison asked before, of the two options ``choice`` names ("1 and 3",
    "user_a vs user_c", "第一个和第三个"); asked again when it names one or a number that is
    no option; None when it is no reply (a new question)."""
    zh = previous.language == "zh"
    text = re.sub(
        r"第?([一二两三四五六七八九十]{1,3})(?:个|号)?",
        lambda z: str(zh_number(z.group(1)) or z.group(1)),
        choice,
    )
    numbers = re.fullmatch(
        r"#?(\d{1,3})\s*(?:and|&|,|，|、|和|与|跟|vs\.?|\s)\s*#?(\d{1,3})", text, re.I
    )
    picked: list[str] = []
    single = re.fullmatch(r"#?(\d{1,3})", text.strip())
    if single:
        # One number where two are needed: ask again for both.
        n = int(single.group(1))
        retry = (
            f"{n}不是{len(options)}个选项之一。"
            if zh and not 1 <= n <= len(options)
            else f"{n} is not one of the {len(options)} options."
            if not 1 <= n <= len(options)
            else f"需要两个选项，例如“{n}和{1 if n != 1 else 2}”。"
            if zh
            else f"Two are needed: e.g. '{n} and {1 if n != 1 else 2}'."
        )
        return _Turn(previous, retry=retry)
    if numbers:
        for n in (int(numbers.group(1)), int(numbers.group(2))):
            if not 1 <= n <= len(options):
                retry = (
                    f"{n}不是{len(options)}个选项之一。"
                    if zh
                    else f"{n} is not one of the {len(options)} options."
                )
                return _Turn(previous, retry=retry)
            picked.append(options[n - 1])
    else:
        low = choice.lower()
        hits = sorted(
            (low.find(o.lower()), o)
            for o in options
            if re.search(r"(?<![\w\-])" + re.escape(o.lower()) + r"(?![\w\-])", low)
        )
        picked = [o for _, o in hits]
    if len(picked) == 1 or (len(picked) == 2 and picked[0] == picked[1]):
        retry = "请选两个不同的选项。" if zh else "Pick two different options."
        return _Turn(previous, retry=retry)
    if len(picked) != 2:
        return None
    e = dataclasses.replace(previous.entities, compare_entities=(level, picked[0], picked[1]))
    return _Turn(dataclasses.replace(previous, entities=e, missing=(), follow_up=True))


class Analyst:
    """Answers questions over one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        idle_threshold_pct: float = 5.0,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.time,
        persist: bool = True,
        llm: LlmClient | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.idle_threshold_pct = idle_threshold_pct
        self.prices = prices
        self.clock = clock
        self.persist = persist
        self._catalogs: dict[tuple[float, float, str | None], Catalog] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- sessions ------------------------------------------------------------------------

    def session(self, session_id: str) -> list[ChatTurn]:
        """A session's turns.

        Raises:
            UnknownSessionError: no such session.
        """
        turns = self.store.chat_turns(session_id)
        if not turns:
            raise UnknownSessionError(
                f"no session {session_id!r}; gpufleet sessions list shows the ids"
            )
        return turns

    # ---- asking ---------------------------------------------------------------------------

    def ask(
        self, query: str, *, session_id: str | None = None, cluster: str | None = None
    ) -> Reply:
        """Answer ``query`` in ``session_id`` (a new session when None).

        Raises:
            AnalystError: an empty or overlong question, one with a control character
                (other than tab and line breaks), a malformed session id, or a
                cluster with no data (the message lists the clusters).
            UnknownSessionError: a session id that the store does not hold.
            StoreError: the store cannot answer.
        """
        began = time.perf_counter()
        text = query.strip()
        if not text:
            raise AnalystError(
                "the question is empty: ask something like "
                "'GPU utilization trend over the past 7 days'"
            )
        if len(text) > MAX_QUERY_CHARS:
            raise AnalystError(
                f"the question is {len(text)} characters; keep it to {MAX_QUERY_CHARS} at most"
            )
        control = _CONTROL.search(text)
        if control is not None:
            raise AnalystError(
                f"the question contains the control character U+{ord(control.group()):04X} "
                f"(at character {control.start()}); only tabs and line breaks may be in it"
            )
        if session_id is not None and not _SESSION_ID.match(session_id):
            raise AnalystError("a session id is 1-64 letters, digits, '.', '_' or '-'")
        if session_id is None:
            return self._ask(text, None, cluster, began)
        # Turns of one session are answered one at a time: each follows the one before.
        with self._session_lock(session_id):
            return self._ask(text, session_id, cluster, began)

    def _session_lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 1024:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault(session_id, threading.Lock())

    def _ask(self, text: str, session_id: str | None, cluster: str | None, began: float) -> Reply:
        turns = self.store.chat_turns(session_id) if session_id else []
        if session_id and not turns:
            # Ids are handed out by the analyst: an unknown one is a typo, not a new session.
            raise UnknownSessionError(
                f"no session {session_id!r}; leave the session out to start one, or list "
                "the sessions to see the ids"
            )
        sid = session_id or uuid.uuid4().hex[:16]
        state = turns[-1].state if turns else {}
        now = data_now(self.store, self.clock())
        tools = Toolbox(
            self.store, now_s=now, idle_threshold_pct=self.idle_threshold_pct, prices=self.prices
        )
        if cluster is not None:
            known = tools.get_available_clusters().result["clusters"]
            if cluster not in known:
                raise AnalystError(
                    f"no cluster {cluster!r} in the store; clusters: {', '.join(known) or 'none'}"
                )
        # Names are those with data in the last 30 days, or since the earliest time the
        # question names ("in June" reaches back further).
        named = find_time_ranges(text, tools.now_s)
        since_days = max([CATALOG_DAYS, *((tools.now_s - r.start_s) / DAY_S for r in named)])
        catalog = self._catalog(tools, cluster, min(math.ceil(since_days), 3650))
        previous = restore_understanding(state.get("understanding"))
        pending = state.get("pending")
        turn = None
        if isinstance(pending, Mapping) and previous is not None:
            turn = self._resolve_pending(text, pending, previous, catalog)
        listed = state.get("listed")
        if turn is None and isinstance(listed, Mapping) and previous is not None:
            turn = _resolve_listed(text, listed, previous)
        if turn is None:
            u = understand(text, catalog, tools.now_s, previous=previous)
            if cluster is not None:
                u = dataclasses.replace(
                    u,
                    entities=dataclasses.replace(u.entities, cluster=cluster),
                    missing=tuple(m for m in u.missing if m != "cluster"),
                )
            turn = _Turn(u)
        source = "offline"
        llm_note: str | None = None
        if self.llm is not None and turn.u.intent == "help" and not turn.u.follow_up:
            # Offline rules gave up: the model may still see what is asked.
            proposal, llm_note = self.llm.route(text, catalog, tools.now_s, turn.u.language)
            if proposal is not None:
                turn = _Turn(proposal)
                source = "llm"
        if turn.u.missing:
            self._clarify(turn, tools, catalog)
        else:
            try:
                self._answer(turn, tools)
            except UnknownSubjectError as exc:
                zh = turn.u.language == "zh"
                turn.answer = (
                    f"没有可以回答的数据：{exc}"
                    if zh
                    else f"There is no data to answer that: {exc}"
                )
            except (ToolError, HistoryQueryError) as exc:
                zh = turn.u.language == "zh"
                turn.answer = f"无法回答：{exc}" if zh else f"I cannot answer that: {exc}"
        self._caveats(turn)
        if self.llm is not None and turn.results:
            better, why_not = self.llm.reword(
                text, turn.answer, [r.result for r in turn.results], turn.u.language
            )
            if better is not None:
                turn.answer = better
                source = "llm" if source == "offline" else source
            llm_note = llm_note or why_not
        turn.answer = sentence(turn.answer, turn.u)
        reply = Reply(
            answer=turn.answer,
            intent=turn.u.intent,
            entities=_entities_wire(turn.u, tools.now_s),
            clarification=turn.clarification,
            insights=turn.insights,
            data=[r.wire() for r in turn.results],
            session_id=sid,
            language=turn.u.language,
            follow_up=turn.u.follow_up,
            elapsed_ms=(time.perf_counter() - began) * 1000.0,
            source=source,
            llm_note=llm_note,
        )
        if self.persist:
            # A turn not understood (help) keeps the conversation's context for the next one.
            kept = previous if turn.u.intent == "help" and previous is not None else turn.u
            new_state: dict[str, Any] = {"understanding": save_understanding(kept)}
            if turn.clarification is not None:
                new_state["pending"] = {
                    "missing": turn.u.missing[0],
                    "options": turn.clarification["options"],
                }
            elif turn.listed is not None:
                # "2" after a list picks its second entry.
                new_state["listed"] = {"level": turn.listed[0], "options": turn.listed[1]}
            try:
                self.store.save_chat_turn(
                    ChatTurn(
                        session_id=sid,
                        seq=(turns[-1].seq + 1) if turns else 1,
                        ts_s=self.clock(),
                        query=text,
                        reply=reply.wire(),
                        state=new_state,
                        cluster=cluster,
                    )
                )
            except ChatTurnConflictError:
                raise SessionBusyError(
                    f"session {sid!r} answered another question at the same time; this one "
                    "was not saved: ask it again"
                ) from None
        return reply

    # ---- internals --------------------------------------------------------------------------

    def _catalog(self, tools: Toolbox, cluster: str | None, days: float) -> Catalog:
        # Names change slowly: one catalog a minute serves a live store's questions.
        key = (tools.now_s // 60.0, days, cluster)
        found = self._catalogs.get(key)
        if found is None:
            if len(self._catalogs) > 16:
                self._catalogs.clear()
            found = self._catalogs[key] = tools.catalog(tools.window(days), cluster)
        return found

    @staticmethod
    def _caveats(turn: _Turn) -> None:
        """Say what the question named that the answer could not use."""
        u = turn.u
        zh = u.language == "zh"
        said: list[str] = []
        if u.corrected:
            pairs = [f"'{a}'" + ("理解为" if zh else " as ") + b for a, b in u.corrected]
            said.append(f"把{'、'.join(pairs)}。" if zh else f"Read {', '.join(pairs)}.")
        if u.unknown and turn.results:
            names = ", ".join(repr(n) for n in u.unknown)
            scope = _name(u.entities, zh)
            ce = u.entities.compare_entities
            if ce is not None and u.intent == "compare":
                # "cv-team vs nlp-team vs ml-platform": the answer is about the ones that exist.
                known = [ce[1], ce[2], *u.entities.compare_more]
                scope = ("、" if zh else " and ").join(known)
            said.append(
                f"没有名为{names}的集群、节点、GPU型号、命名空间、用户或工作负载有数据；以下是{scope}的结果。"
                if zh
                else f"Nothing named {names} has data (clusters, nodes, GPU models, namespaces, "
                f"users and workloads were checked); this answer is about {scope}."
            )
        for problem in u.problems:
            said.append(problem if zh else say.capitalized(problem))
        if said:
            turn.answer = "\n".join([*said, sentence(turn.answer, u)])

    def _resolve_pending(
        self, text: str, pending: Mapping[str, Any], previous: Understanding, catalog: Catalog
    ) -> _Turn | None:
        """The previous question with the clarification's answer filled in, or None when
        ``text`` does not answer it (it is then a new question)."""
        options = [str(o) for o in pending.get("options", [])]
        missing = str(pending.get("missing", ""))
        choice = text.strip().rstrip(".。!！").strip()
        if missing.startswith("pair:"):
            return _resolve_pair(choice, options, missing[5:], previous)
        picked: str | None = None
        choice = re.sub(
            r"^(第?)([一二两三四五六七八九十]{1,3})(?=个|号|$)",
            lambda z: z.group(1) + str(zh_number(z.group(2)) or z.group(2)),
            choice,
        )
        m = re.fullmatch(r"(?:#|no\.?\s*|第)?\s*(\d{1,3})\s*(?:个|号)?", choice, re.IGNORECASE)
        if m and not 1 <= int(m.group(1)) <= len(options):
            # A number that is no option: ask again, saying so.
            retry = (
                f"{m.group(1)}不是{len(options)}个选项之一。"
                if previous.language == "zh"
                else f"{m.group(1)} is not one of the {len(options)} options."
            )
            return _Turn(previous, retry=retry)
        picked = options[int(m.group(1)) - 1] if m else option_reply(choice, options)
        all_words = re.fullmatch(
            r"(?:all|all of them|every\w*|全部|所有|都要)", choice, re.IGNORECASE
        )
        if picked is None and not all_words:
            if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", choice):
                # One word that is no option ("nobody-team"): ask again rather than guess.
                retry = (
                    f"{choice}不是选项之一。"
                    if previous.language == "zh"
                    else f"{choice!r} is not one of the options."
                )
                return _Turn(previous, retry=retry)
            return None
        e = previous.entities
        if missing == "cluster":
            e = dataclasses.replace(e, cluster=picked, all_clusters=picked is None)
        elif missing == "namespace" and picked is not None:
            e = dataclasses.replace(e, namespace=picked)
        u = dataclasses.replace(previous, entities=e, missing=(), follow_up=True)
        return _Turn(u)

    def _clarify(self, turn: _Turn, tools: Toolbox, catalog: Catalog) -> None:
        u = turn.u
        zh = u.language == "zh"
        missing = u.missing[0]
        window = _range(u.entities, tools.now_s)
        when_zh, when_en = window_label(window, True), window_label(window, False)
        if missing.startswith("pair:"):
            level = missing[5:]
            found = tools.catalog(Window(window.start_s, window.end_s), u.entities.cluster)
            options = list(found.values(level))[:_PAIR_OPTIONS]
            noun_zh = {
                "user": "用户",
                "namespace": "命名空间",
                "workload": "工作负载",
                "node": "节点",
            }
            capped = len(options) == _PAIR_OPTIONS
            question = (
                f"要比较哪两个{noun_zh[level]}？{when_zh}有GPU使用的{noun_zh[level]}"
                f"{f'（用量最多的前{_PAIR_OPTIONS}个）' if capped else ''}："
                if zh
                else f"Which two {level}s? {level.capitalize()}s with GPU usage "
                f"{say.in_window(when_en)}{f' (the {_PAIR_OPTIONS} busiest)' if capped else ''}:"
            )
        elif missing == "namespace":
            options = list(
                tools.catalog(Window(window.start_s, window.end_s), u.entities.cluster).namespaces
            )
            question = (
                f"想查看哪个命名空间的GPU使用情况？{when_zh}有GPU使用的命名空间："
                if zh
                else f"Which namespace? Namespaces with GPU usage {say.in_window(when_en)}:"
            )
        else:
            options = list(catalog.clusters)
            question = (
                "想查询哪个集群？系统中有以下集群："
                if zh
                else "Which cluster do you want to look at? The store has these clusters:"
            )
        if not options:
            # Nothing to pick from: say so rather than ask a question with no answers.
            where = f"{u.entities.cluster}中" if zh and u.entities.cluster else ""
            where_en = f" in {u.entities.cluster}" if u.entities.cluster else ""
            noun = missing.removeprefix("pair:")
            level_zh = {"namespace": "命名空间", "cluster": "集群", "user": "用户"}.get(noun, noun)
            turn.answer = (
                f"{when_zh}{where}没有任何{level_zh}有GPU使用数据，所以无从选择。"
                if zh
                else f"No {noun} has GPU usage data{where_en} {say.in_window(when_en)}, "
                "so there is nothing to choose from."
            )
            return
        tail = (
            "请回复编号或名称。"
            if zh
            else "Reply with a number or a name"
            + (', or "all" for every cluster.' if missing == "cluster" else ".")
        )
        if missing.startswith("pair:"):
            tail = (
                "请回复两个编号或名称，例如“1和3”。"
                if zh
                else 'Reply with two numbers or names, e.g. "1 and 3".'
            )
        turn.clarification = {"question": question, "options": options, "missing": missing}
        turn.answer = f"{question}\n{say.numbered(options)}\n{tail}"
        if turn.retry:
            turn.answer = f"{turn.retry}\n{turn.answer}"

    def _answer(self, turn: _Turn, tools: Toolbox) -> None:
        u = turn.u
        e = u.entities
        zh = u.language == "zh"
        scope = _scope(e)
        name = _name(e, zh)
        rng = _range(e, tools.now_s)
        window = Window(rng.start_s, rng.end_s)
        label = window_label(rng, zh)
        metric = e.metric or "utilization"
        intent = u.intent
        if intent in ("trend", "drilldown") and e.rank is not None:
            level, order = e.rank
            r = tools.rank_entities(
                scope=scope,
                window=window,
                by=level,
                metric_type=e.metric or e.rank_measure or metric,
                order=order,
            )
            turn.results.append(r)
            turn.answer, turn.insights = say.ranking(r.result, label, zh)
        elif intent == "trend":
            gran = e.granularity or ("hour" if rng.days <= 2 else "day")
            r = tools.query_gpu_usage_trend(
                scope=scope,
                granularity=gran,
                metric_type=metric,
                start_s=window.start_s,
                end_s=window.end_s,
                dimension=_dimension(e),
                dimension_value=_dimension_value(e),
                cluster=e.cluster,
            )
            turn.results.append(r)
            now_iso = TimeRange(tools.now_s, tools.now_s, "").iso()["start"]
            turn.answer, turn.insights = answer_trend.trend(r.result, label, zh, now_iso)
        elif intent == "compare" and e.compare_entities is not None:
            level, a, b = e.compare_entities
            for other in (b, *e.compare_more):
                turn.results.append(
                    tools.compare_entities(
                        level=level, a=a, b=other, window=window, scope=scope, metric_type=metric
                    )
                )
            if e.compare_more:
                turn.answer, turn.insights = say.compare_several(
                    [x.result for x in turn.results], label, zh
                )
            else:
                turn.answer, turn.insights = say.compare_entities(turn.results[0].result, label, zh)
        elif intent in ("compare", "drilldown"):
            # The later window is the one described, the earlier the reference: "compare
            # October and November" reads as November against October.
            later, earlier = rng, e.compare_range or previous_period(rng)
            if earlier.start_s > later.start_s:
                later, earlier = earlier, later
            first, second = (
                Window(later.start_s, later.end_s),
                Window(earlier.start_s, earlier.end_s),
            )
            labels = window_label(later, zh), window_label(earlier, zh)
            if intent == "compare":
                r = tools.compare_periods(
                    scope=scope, first=first, second=second, metric_type=metric
                )
                turn.results.append(r)
                turn.answer, turn.insights = say.compare_windows(r.result, *labels, name, zh)
            else:
                r = tools.drill_down(
                    scope=scope,
                    after=first,
                    before=second,
                    metric="gpu_hours" if metric == "gpu_hours" else "utilization",
                    levels=(e.drill_to,) if e.drill_to else WORKLOAD_KEYS,
                )
                turn.results.append(r)
                turn.answer, turn.insights = drilldown(r.result, *labels, zh)
                turn.answer = say.premise_note(u.premise, r.result, zh) + turn.answer
                if metric != "gpu_hours" and not _held_scope(scope):
                    # Utilization of held time leaves out GPUs nobody holds: say how the
                    # allocation moved too, as fewer GPUs held is often most of a fall.
                    alloc = tools.compare_periods(
                        scope=scope, first=first, second=second, metric_type="allocation_rate"
                    )
                    turn.results.append(alloc)
                    turn.insights.insert(0, say.allocation_moved(alloc.result, *labels, zh))
        elif intent == "realtime":
            r = tools.get_latest_snapshot(scope=_scope(e))
            turn.results.append(r)
            turn.answer, turn.insights = say.realtime(r.result, name, zh, u.asks_idle)
        elif intent == "metadata":
            self._metadata(turn, tools, e, zh)
        elif intent == "waste":
            by = "namespace" if scope.namespace is None else "workload"
            if e.rank is not None:
                by = e.rank[0]  # "which user wastes the most?"
            r = tools.get_gpu_waste(scope=scope, window=window, by=by)
            turn.results.append(r)
            if e.rank is not None:
                turn.answer, turn.insights = answer_waste.waste_ranking(r.result, label, name, zh)
            else:
                turn.answer, turn.insights = answer_waste.waste(r.result, label, name, zh)
        elif intent == "recommend":
            r = tools.get_recommendations(scope=scope, window=window)
            turn.results.append(r)
            turn.answer, turn.insights = answer_waste.recommend(r.result, label, zh)
        elif intent == "alerts":
            # Alerts of the window (the past 7 days unless named), from the store: the ones
            # not resolved yet are the active ones.
            r = tools.get_alerts(window=window, cluster=e.cluster)
            turn.results.append(r)
            turn.answer, turn.insights = answer_waste.alerts(r.result, label, zh)
        else:
            turn.answer = say.HELP_ZH if zh else say.HELP_EN

    def _metadata(self, turn: _Turn, tools: Toolbox, e: Entities, zh: bool) -> None:
        level = e.metadata_level or "cluster"
        rng = _range(e, tools.now_s)
        of: str | None = None
        label = window_label(rng, zh)
        if level == "cluster":
            r = tools.get_available_clusters()
            values: list[str] | dict[str, int] = r.result["clusters"]
            label = "存储中" if zh else "store"
        elif level == "namespace":
            r = tools.get_available_namespaces(time_range_days=rng.days, cluster=e.cluster)
            values = r.result["namespaces"]
        elif level == "dimension":
            r = tools.get_available_dimension_keys(time_range_days=rng.days, cluster=e.cluster)
            values = r.result["keys"]
        elif level in ("user", "workload", "workload_kind") and (e.namespace or e.user):
            # "which users are in ml-team?", "list workloads of user_a"
            r = tools.get_workload_metadata(
                cluster=e.cluster, time_range_days=rng.days, namespace=e.namespace, user=e.user
            )
            key = {"user": "users", "workload": "workload_names", "workload_kind": "kinds"}[level]
            values = r.result[key]
            of = e.user or e.namespace
        else:
            r = tools.get_workload_metadata(cluster=e.cluster, time_range_days=rng.days)
            c = tools.catalog(tools.window(rng.days), e.cluster)
            values = list(c.values(level))
        turn.results.append(r)
        turn.answer, turn.insights = say.metadata(level, values, label, zh, of)
        if level in _PICKABLE and isinstance(values, list):
            turn.listed = (level, [str(v) for v in values[: say.METADATA_SHOWN]])


# ---- helpers -----------------------------------------------------------------------------


def _scope(e: Entities) -> Scope:
    label_levels: dict[str, str] = {}
    if e.label is not None and e.label[0] in ("namespace", "user", "workload", "node"):
        label_levels[e.label[0]] = e.label[1]
    return Scope(
        workload_kind=e.label[1] if e.label is not None and e.label[0] == "workload_kind" else None,
        cluster=e.cluster,
        node=label_levels.get("node", e.node),
        gpu_model=e.gpu_model,
        namespace=label_levels.get("namespace", e.namespace),
        user=label_levels.get("user", e.user),
        workload=label_levels.get("workload", e.workload),
    )


def _dimension(e: Entities) -> str:
    for level in ("workload", "user", "namespace", "node", "gpu_model"):
        if getattr(e, level):
            return level
    return "cluster"


def _dimension_value(e: Entities) -> str | None:
    dim = _dimension(e)
    return e.cluster if dim == "cluster" else getattr(e, dim)


def _name(e: Entities, zh: bool) -> str:
    return say.scope_name(dataclasses.asdict(_scope(e)), zh)


def _range(e: Entities, now_s: float) -> TimeRange:
    return e.time_range or default_range(now_s)


def _entities_wire(u: Understanding, now_s: float) -> dict[str, Any]:
    e = u.entities
    out: dict[str, Any] = {}
    if u.intent not in ("metadata", "help", "realtime") and not (
        u.intent == "alerts" and e.time_range is None
    ):
        rng = _range(e, now_s)
        out["time_range"] = {**rng.iso(), "label": rng.label}
    for level in (
        "cluster",
        "namespace",
        "user",
        "workload",
        "node",
        "gpu_model",
        "metric",
        "granularity",
    ):
        value = getattr(e, level)
        if value is not None:
            out[level] = value
    if e.label is not None:
        out["label"] = {"key": e.label[0], "value": e.label[1]}
    ranked = e.rank is not None and u.intent in ("trend", "drilldown")
    if u.intent in ("compare", "drilldown") and not ranked:
        if e.compare_entities is not None:
            level, a, b = e.compare_entities
            out["compare"] = {"level": level, "a": a, "b": b}
            if e.compare_more:
                out["compare"]["more"] = list(e.compare_more)
        else:
            first = _range(e, now_s)
            second = e.compare_range or previous_period(first)
            out["compare"] = {"windows": [first.iso(), second.iso()]}
    ranked = ranked or (e.rank is not None and u.intent == "waste")
    if ranked and e.rank is not None:
        out["rank"] = {"by": e.rank[0], "order": e.rank[1]}
        out["rank"]["measure"] = (
            "idle_allocated_gpu_hours"
            if u.intent == "waste"
            else e.metric or e.rank_measure or "utilization"
        )
    if e.metadata_level is not None and u.intent == "metadata":
        out["lists"] = e.metadata_level
    return out


__all__ = ["Analyst", "AnalystError", "Reply", "SessionBusyError", "UnknownSessionError"]
