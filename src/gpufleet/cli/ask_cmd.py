"""``gpufleet ask``, ``gpufleet chat`` and ``gpufleet sessions``: the analyst from the shell.

``ask`` answers one question from a store (``--db``) or a running agent (``--url``, through
``POST /api/gpu-analysis/chat``); ``--json`` prints the endpoint's reply object. ``chat`` is
the same in a loop, one session, until ``exit`` or Ctrl-D. ``sessions`` lists, shows and
deletes the conversations kept in the store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from gpufleet.cli.common import (
    console,
    err_console,
    fail,
    guarded,
    open_for_reading,
    print_json,
    send_json,
    settings_from,
)

DbOpt = Annotated[
    str | None, typer.Option("--db", help="SQLite path or postgresql:// URL (default: settings)")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Ask a running agent instead, e.g. http://127.0.0.1:8003"),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="GPUFLEET_HUB_TOKEN", help="A read token, to ask a hub with --url."
    ),
]
SessionOpt = Annotated[
    str | None, typer.Option("--session", help="Continue this session (default: a new one)")
]
ClusterOpt = Annotated[str | None, typer.Option("--cluster", help="Answer about this cluster")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the reply object (as the API).")]

sessions_app = typer.Typer(
    help="The analyst's conversations kept in the store.", no_args_is_help=True
)


def _print_reply(reply: dict[str, Any]) -> None:
    # soft_wrap: an answer is one line however long (a terminal wraps it; a pipe keeps it).
    console.print(escape(reply["answer"]), highlight=False, soft_wrap=True)
    for insight in reply.get("insights", []):
        console.print(f"  - {escape(insight)}", highlight=False, soft_wrap=True)
    console.print(
        f"[dim]({escape(reply['intent'])}, session {escape(reply['session_id'])})[/dim]",
        highlight=False,
    )


class _Asker:
    """One way to ask: a local store or an agent's HTTP API."""

    def __init__(
        self, db: str | None, url: str | None, config: Path | None, token: str | None = None
    ) -> None:
        if db and url:
            fail("give --db or --url, not both")
        self.url = url
        self.token = token
        self.store: Any = None
        self.analyst: Any = None
        if url is None:
            from gpufleet.analyst.engine import Analyst
            from gpufleet.analyst.llm import client_from

            settings = settings_from(config, db=db)
            self.store = open_for_reading(db, config)
            self.analyst = Analyst(
                self.store,
                idle_threshold_pct=settings.idle_threshold_pct,
                prices=settings.prices.to_table(),
                llm=client_from(settings.llm),
            )

    def ask(self, query: str, session: str | None, cluster: str | None) -> dict[str, Any]:
        if self.url is not None:
            body = {"query": query, "session_id": session, "cluster_name": cluster}
            answered: dict[str, Any] = send_json(
                "POST",
                self.url,
                "/api/gpu-analysis/chat",
                {k: v for k, v in body.items() if v},
                token=self.token,
            )
            return answered
        from gpufleet.analyst.engine import UnknownSessionError

        analyst = self.analyst
        try:
            reply: dict[str, Any] = analyst.ask(query, session_id=session, cluster=cluster).wire()
        except UnknownSessionError as exc:
            fail(str(exc), code=1)
        except ValueError as exc:
            fail(str(exc))
        return reply

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def ask(
    question: Annotated[str, typer.Argument(help="The question, in English or Chinese.")],
    db: DbOpt = None,
    url: UrlOpt = None,
    session: SessionOpt = None,
    cluster: ClusterOpt = None,
    json_out: JsonOpt = False,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ask the analyst one question about GPU usage (offline: no LLM needed)."""
    asker = _Asker(db, url, config, token)
    try:
        reply = asker.ask(question, session, cluster)
    finally:
        asker.close()
    if json_out:
        print_json(reply)
    else:
        _print_reply(reply)


def chat(
    db: DbOpt = None,
    url: UrlOpt = None,
    session: SessionOpt = None,
    cluster: ClusterOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Talk with the analyst in one session (follow-ups keep their context).

    'exit' or Ctrl-D ends it.
    """
    asker = _Asker(db, url, config, token)
    console.print(
        "Ask about GPU usage (e.g. 'utilization trend over the past 7 days'); 'help' for "
        "examples, 'exit' to leave.",
        highlight=False,
    )
    try:
        while True:
            try:
                question = console.input("[bold]> [/bold]").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if not question:
                continue
            if question.lower() in ("exit", "quit", "bye", "退出"):
                break
            try:
                reply = asker.ask(question, session, cluster)
            except typer.Exit:
                continue  # the reason was printed on one line; the conversation goes on
            session = reply["session_id"]
            _print_reply(reply)
    finally:
        asker.close()
    if session:
        console.print(
            f"[dim]session {escape(session)} is kept: "
            f"--session {escape(session)} continues it[/dim]"
        )


def _session_rows(
    db: str | None, url: str | None, config: Path | None, limit: int, token: str | None = None
) -> tuple[list[Any], int | None]:
    """``{session_id, updated_at, turns, title}`` per session, from a store or an agent, and
    how many sessions there are in all (None: an agent that does not say)."""
    from gpufleet.store.record_queries import RecordReads

    if db and url:
        fail("give --db or --url, not both")
    if url is not None:
        listed = send_json("GET", url, f"/api/gpu-analysis/sessions?limit={limit}", token=token)
        rows = [
            {k: s[k] for k in ("session_id", "updated_at", "turns", "title")}
            for s in listed["sessions"]
        ]
        said = listed.get("total")
        return rows, said if isinstance(said, int) else None
    store = open_for_reading(db, config)
    try:
        found = guarded(lambda: store.chat_sessions(limit=limit))
        # Counted only when the listing is full: a shorter one is all there is.
        total: int | None = len(found)
        if len(found) >= limit:
            total = guarded(store.chat_session_count) if isinstance(store, RecordReads) else None
    finally:
        store.close()
    return [
        {
            "session_id": s.id,
            "updated_at": datetime.fromtimestamp(s.updated_s, tz=UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "turns": s.turns,
            "title": s.title,
        }
        for s in found
    ], total


@sessions_app.command("list")
def sessions_list(
    db: DbOpt = None,
    url: UrlOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 50,
    json_out: JsonOpt = False,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Sessions, most recently updated first (at most --limit; a line on stderr says when
    there are more)."""
    rows, total = _session_rows(db, url, config, limit, token)
    if json_out:
        print_json({"sessions": rows})
        return
    if not rows:
        console.print('no sessions yet: gpufleet ask "..." starts one')
        return
    for r in rows:
        when = str(r["updated_at"]).replace("T", " ").removesuffix("Z")
        console.print(
            f"{escape(r['session_id'])}  {when}  {r['turns']} turn(s)  {escape(r['title'])}",
            highlight=False,
        )
    if total is not None and total > len(rows):
        err_console.print(
            f"showing {len(rows)} of {total} sessions (the most recently updated); "
            "--limit N for more",
            highlight=False,
        )


def _session_turns(
    session_id: str,
    db: str | None,
    url: str | None,
    config: Path | None,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """``{seq, query, reply}`` per turn of a session, from a store or an agent."""
    if db and url:
        fail("give --db or --url, not both")
    if url is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", session_id):
            fail(f"no session {session_id!r}; gpufleet sessions list shows the ids", code=1)
        shown = send_json("GET", url, f"/api/gpu-analysis/sessions/{session_id}", token=token)
        return [{k: t[k] for k in ("seq", "query", "reply")} for t in shown["turns"]]
    from gpufleet.analyst.engine import Analyst, UnknownSessionError

    store = open_for_reading(db, config)
    try:
        turns = Analyst(store).session(session_id)
    except UnknownSessionError as exc:
        fail(str(exc), code=1)
    finally:
        store.close()
    return [{"seq": t.seq, "query": t.query, "reply": dict(t.reply)} for t in turns]


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="The session id")],
    db: DbOpt = None,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A session's questions and answers."""
    turns = _session_turns(session_id, db, url, config, token)
    if json_out:
        print_json({"session_id": session_id, "turns": turns})
        return
    for t in turns:
        console.print(f"[bold]> {escape(str(t['query']))}[/bold]", highlight=False, soft_wrap=True)
        console.print(escape(str(t["reply"].get("answer", ""))), highlight=False, soft_wrap=True)


@sessions_app.command("delete")
def sessions_delete(
    session_id: Annotated[str, typer.Argument(help="The session id")],
    db: DbOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete a session."""
    if db and url:
        fail("give --db or --url, not both")
    if url is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", session_id):
            fail(f"no session {session_id!r}; gpufleet sessions list shows the ids", code=1)
        done = send_json("DELETE", url, f"/api/gpu-analysis/sessions/{session_id}", token=token)
        deleted = int(done["deleted_turns"])
    else:
        store = open_for_reading(db, config)
        try:
            deleted = guarded(lambda: store.delete_chat_session(session_id))
        finally:
            store.close()
    if deleted == 0:
        fail(f"no session {session_id!r}; gpufleet sessions list shows the ids", code=1)
    console.print(f"deleted session {escape(session_id)} ({deleted} turn(s))", highlight=False)
