"""``/api/gpu-analysis/*``: the conversational analyst (seed 001) and its sessions.

``POST /chat`` answers one question; ``POST /chat/stream`` sends the same reply as
server-sent events (``meta``, then ``answer`` in pieces, ``insight`` per insight, ``data``,
``done``); ``GET``/``DELETE /sessions/{id}`` read back and delete a conversation. Routes
only translate HTTP to :class:`gpufleet.analyst.engine.Analyst`; every number comes from the
analysis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from gpufleet.analysis.wire import iso
from gpufleet.analyst.engine import (
    Analyst,
    AnalystError,
    Reply,
    SessionBusyError,
    UnknownSessionError,
)
from gpufleet.analyst.llm import client_from
from gpufleet.api.deps import Ctx, HistoryStore
from gpufleet.api.schemas.chat import ChatIn
from gpufleet.store.base import Store
from gpufleet.store.record_queries import RecordReads

router = APIRouter(prefix="/api/gpu-analysis", tags=["analyst"])


def analyst(request: Request, ctx: Ctx, store: HistoryStore) -> Analyst:
    """The app's analyst (one per app, so its name catalog is reused between questions)."""
    found: Analyst | None = getattr(request.app.state, "analyst", None)
    if found is None or found.store is not store:
        found = Analyst(
            store,
            idle_threshold_pct=ctx.settings.idle_threshold_pct,
            prices=ctx.settings.prices.to_table(),
            llm=client_from(ctx.settings.llm),
        )
        request.app.state.analyst = found
    return found


AnalystDep = Annotated[Analyst, Depends(analyst)]


def _ask(an: Analyst, body: ChatIn) -> Reply:
    try:
        return an.ask(body.query, session_id=body.session_id, cluster=body.cluster_name)
    except UnknownSessionError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except SessionBusyError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except AnalystError as exc:
        raise HTTPException(422, detail=str(exc)) from None


@router.post("/chat")
def chat(an: AnalystDep, body: ChatIn) -> dict[str, Any]:
    """Answer a question: ``answer``, ``intent``, ``entities``, ``clarification``,
    ``insights``, ``data`` (the analysis results behind every number) and ``session_id``."""
    return _ask(an, body).wire()


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


_PIECE = re.compile(r".+?(?:[.!?](?=\s|$)\s*|[。！？]\s*|\n+|$)", re.S)


def _pieces(text: str) -> list[str]:
    """The answer cut after each sentence (a full stop before a space, not inside "84.8",
    or Chinese punctuation) or line; the pieces joined are the answer exactly."""
    return [p for p in _PIECE.findall(text) if p]


@router.post("/chat/stream")
def chat_stream(an: AnalystDep, body: ChatIn) -> StreamingResponse:
    """The reply of ``/chat`` as server-sent events: ``meta`` (intent, entities,
    clarification, session), ``answer`` pieces, one ``insight`` each, ``data``, ``done``."""
    reply = _ask(an, body)

    def events() -> Iterator[str]:
        yield _sse(
            "meta",
            {
                "session_id": reply.session_id,
                "intent": reply.intent,
                "entities": reply.entities,
                "clarification": reply.clarification,
                "language": reply.language,
            },
        )
        for piece in _pieces(reply.answer):
            yield _sse("answer", {"text": piece})
        for insight in reply.insights:
            yield _sse("insight", {"text": insight})
        yield _sse("data", reply.data)
        yield _sse("done", {"elapsed_ms": reply.elapsed_ms})

    return StreamingResponse(events(), media_type="text/event-stream")


def _session_wire(store: Store, session_id: str) -> dict[str, Any]:
    turns = store.chat_turns(session_id)
    if not turns:
        raise HTTPException(
            404, detail=f"no session {session_id!r}; GET /api/gpu-analysis/sessions lists them"
        )
    return {
        "session_id": session_id,
        "turns": [
            {
                "seq": t.seq,
                "at": iso(t.ts_s),
                "query": t.query,
                "cluster": t.cluster,
                "reply": t.reply,
            }
            for t in turns
        ],
    }


@router.get("/sessions")
def sessions(
    store: HistoryStore, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Sessions, most recently updated first; ``total`` counts them all, beyond ``limit``
    (null: this store cannot say)."""
    listed = [
        {
            "session_id": s.id,
            "created_at": iso(s.created_s),
            "updated_at": iso(s.updated_s),
            "turns": s.turns,
            "title": s.title,
            "cluster": s.cluster,
        }
        for s in store.chat_sessions(limit=limit)
    ]
    # Counted only when the listing is full: a shorter one is all there is.
    total: int | None = len(listed)
    if len(listed) >= limit:
        total = store.chat_session_count() if isinstance(store, RecordReads) else None
    return {"sessions": listed, "total": total}


@router.get("/sessions/{session_id}")
def session(store: HistoryStore, session_id: str) -> dict[str, Any]:
    """A session's turns with their replies."""
    return _session_wire(store, session_id)


@router.delete("/sessions/{session_id}")
def delete_session(store: HistoryStore, session_id: str) -> dict[str, Any]:
    """Delete a session; 404 when there is none."""
    deleted = store.delete_chat_session(session_id)
    if deleted == 0:
        raise HTTPException(
            404, detail=f"no session {session_id!r}; GET /api/gpu-analysis/sessions lists them"
        )
    return {"session_id": session_id, "deleted_turns": deleted}
