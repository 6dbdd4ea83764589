"""``gpufleet.Client`` against the real hub app served by uvicorn (its lease sweeper
running): tokens enforced with the hub's detail, a node joining and pushing samples, the
fleet views, leases, pools and groups, tasks, tokens, and analysis scoped by pool."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.unit.client_support import HubSetup, build_hub, inventory, serve
from tests.unit.store_samples import gpu, host, snap

from gpufleet.client import (
    AuthError,
    Client,
    ConflictError,
    InvalidArgument,
    NotFoundError,
    RequestRejected,
    Scope,
)
from gpufleet.model_wire import snapshot_to_wire


@pytest.fixture
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubSetup]:
    built = build_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield built
    finally:
        built.store.close()


@pytest.fixture
def url(setup: HubSetup) -> Iterator[str]:
    with serve(setup.app) as base:
        yield base


def _batch(node: str) -> list[dict[str, object]]:
    s = snap(time.time() - 1.0, gpu(f"GPU-{node}-0", 30.0), node=node, system=host(40.0))
    return [snapshot_to_wire(s)]


@pytest.fixture
def joined(setup: HubSetup, url: str) -> str:
    """``c1/n1`` joined (pool ``train``, label rack=a), one snapshot pushed, 4 GPUs beating."""
    with Client(url, setup.node) as node:
        first = node.fleet.join("c1", "n1", pool="train", labels={"rack": "a"}, zone="eu")
        assert first.status == "degraded"
        assert "no samples received yet" in first.reasons
        pushed = node.fleet.ingest("c1", "n1", "n1:1", _batch("n1"))
        assert (pushed.snapshots, pushed.duplicate) == (1, False)
        again = node.fleet.ingest("c1", "n1", "n1:1", _batch("n1"))
        assert again.duplicate is True
        beat = node.fleet.heartbeat("c1", "n1", inventory=inventory(4), health_check={"ms": 3})
        assert beat.status == "healthy"
    return url


def test_tokens_are_enforced_with_the_hubs_detail(setup: HubSetup, url: str) -> None:
    with Client(url) as anonymous, pytest.raises(AuthError) as info:
        anonymous.fleet.nodes()
    assert info.value.status_code == 401
    assert info.value.detail == "this call needs a token: send 'Authorization: Bearer gf_...'"
    with Client(url, token="gf_00000000_" + "x" * 40) as wrong, pytest.raises(AuthError) as info:
        wrong.fleet.nodes()
    assert info.value.status_code == 401
    with Client(url, token="not-a-token") as junk, pytest.raises(AuthError, match="not a gpufleet"):
        junk.fleet.nodes()
    with Client(url, setup.user) as user, pytest.raises(AuthError) as info:
        user.fleet.create_token("x", ["read"])
    assert info.value.status_code == 403
    assert info.value.detail == (
        f"token {setup.user_id} lacks the 'admin' scope (it has: read, submit)"
    )
    # A hub guards its history routes too: reading needs `read`, executing `admin`.
    with Client(url) as anonymous, pytest.raises(AuthError):
        anonymous.analysis.utilization()
    with Client(url, setup.user) as user, pytest.raises(AuthError, match="admin"):
        user.optimize.execute(["x"])


def test_nodes_drain_and_fleet_views(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.user) as user, Client(joined, setup.admin) as admin:
        (n1,) = user.fleet.nodes()
        assert (n1.key, n1.status, n1.pool, n1.zone) == ("c1/n1", "healthy", "train", "eu")
        assert n1.labels == {"rack": "a"}
        assert len(n1.gpus) == 4
        assert n1.cpu_cores == 32
        assert n1.raw["health_check"] == {"ms": 3}
        assert n1.last_sample_s is not None
        assert user.fleet.nodes(label="rack=a") == (n1,)
        assert user.fleet.nodes(pool="infer") == ()
        assert user.fleet.nodes(status="unreachable") == ()
        drained = admin.fleet.drain("c1", "n1", reason="new PSU")
        assert (drained.status, drained.reasons) == ("drained", ("drained: new PSU",))
        assert admin.fleet.undrain("c1", "n1").drained is False
        with pytest.raises(NotFoundError):
            admin.fleet.drain("c1", "n9")
        views = user.fleet.gpus()
        assert views.gpu_count == 1
        (view,) = views.nodes
        assert view.sample is not None
        assert [(g.uuid, g.util_gpu_pct) for g in view.sample.gpus] == [("GPU-n1-0", 30.0)]
        (hostview,) = user.fleet.hosts(pool="train")
        assert hostview.sample is not None
        assert hostview.sample.cpu.cpu_pct == 40.0
        hist = user.fleet.gpu_history("-1h", resolution="raw")
        assert [(s.subject, s.points[0].mean) for s in hist.series] == [("GPU-n1-0", 30.0)]
        cpu = user.fleet.system_history("-1h", resolution="raw")
        assert cpu.series[0].points[0].mean == 40.0
        assert user.fleet.discovered() == ()
        assert user.fleet.models() == ()


def test_lease_renew_release(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.user) as user:
        lease = user.fleet.allocate(2, ttl_s=600, request_id="job-1")
        assert (lease.node, lease.holder, lease.state) == ("n1", "alice", "active")
        assert lease.gpus == ("GPU-n1-0", "GPU-n1-1")
        assert lease.env["CUDA_VISIBLE_DEVICES"] == "GPU-n1-0,GPU-n1-1"
        assert lease.pool == "train"
        assert user.fleet.allocate(2, ttl_s=600, request_id="job-1").id == lease.id  # retry
        assert [x.id for x in user.fleet.leases(state="active")] == [lease.id]
        assert user.fleet.lease(lease.id) == lease
        renewed = user.fleet.renew(lease.id, ttl_s=900)
        assert renewed.renewals == 1
        assert renewed.expires_s is not None
        assert lease.expires_s is not None
        assert renewed.expires_s > lease.expires_s
        with pytest.raises(ConflictError) as info:
            user.fleet.allocate(3)
        assert "free matching GPU" in info.value.detail
        done = user.fleet.release(lease.id)
        assert (done.state, done.released_now) == ("released", True)
        assert user.fleet.release(lease.id).released_now is False
        with pytest.raises(NotFoundError):
            user.fleet.lease("ls_nope")
        with pytest.raises(InvalidArgument, match="lease state"):
            user.fleet.leases(state="done")


def test_pools_and_groups(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.admin) as admin, Client(joined, setup.user) as user:
        (train,) = user.fleet.pools()
        assert (train.name, train.nodes, train.gpus, train.created) == (
            "train",
            ("c1/n1",),
            4,
            False,
        )
        infer = admin.fleet.put_pool("infer", description="serving", nodes=["c1/n1"])
        assert (infer.created, infer.nodes, infer.description) == (True, ("c1/n1",), "serving")
        assert admin.fleet.delete_pool("infer") == "infer"
        group = admin.fleet.create_group("g1", max_gpus=1, description="team g1")
        assert (group.name, group.max_gpus, group.members) == ("g1", 1.0, ())
        assert admin.fleet.add_member("g1", setup.user_id).members == (setup.user_id,)
        assert user.fleet.group_members("g1") == (setup.user_id,)
        with pytest.raises(RequestRejected, match="max_gpus"):
            user.fleet.allocate(2)  # over the group's quota
        assert admin.fleet.update_group("g1", max_gpus=8).max_gpus == 8.0
        lease = user.fleet.allocate(2)
        assert lease.group == "g1"
        assert user.fleet.group("g1").gpus_in_use == 2.0
        user.fleet.release(lease.id)
        assert user.fleet.remove_member("g1", setup.user_id).members == ()  # leaving itself
        assert [g.name for g in user.fleet.groups()] == ["g1"]
        assert admin.fleet.delete_group("g1") == "g1"
        with pytest.raises(NotFoundError):
            user.fleet.group("g1")
        with pytest.raises(InvalidArgument, match="nothing to change"):
            admin.fleet.update_group("g1")


def test_tasks(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.user) as user:
        task = user.fleet.submit(["echo", "hi"], gpus=1, name="hello")
        assert (task.name, task.holder, task.command, task.state) == (
            "hello",
            "alice",
            ("echo", "hi"),
            "queued",
        )
        assert [p.state for p in task.parts] == ["queued"]
        assert task.parts[0].error is not None  # why it waits: the node runs no tasks
        assert [t.id for t in user.fleet.tasks(state="queued")] == [task.id]
        assert user.fleet.task(task.id).id == task.id
        cancelled = user.fleet.cancel(task.id)
        assert cancelled.state == "cancelled"
        assert cancelled.parts[0].error == "cancelled by alice"
        with pytest.raises(NotFoundError, match="no task 'nope'"):
            user.fleet.task("nope")
    with (
        Client(joined, setup.node) as node,
        pytest.raises(NotFoundError, match="no part 0 of task 'nope'"),
    ):
        node.fleet.report_part("nope", 0, cluster="c1", node="n1", state="running")


def test_tokens_create_use_revoke(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.admin) as admin:
        token = admin.fleet.create_token("ci", ["read"], ttl_s=3600)
        assert token.secret is not None
        assert token.secret.startswith(f"gf_{token.id}_")
        assert token.scopes == ("read",)
        assert token.expires_s is not None
        listed = {t.id: t for t in admin.fleet.tokens()}
        assert listed[token.id].secret is None  # never shown again
        with Client(joined, token.secret) as ci:
            assert [n.key for n in ci.fleet.nodes()] == ["c1/n1"]
            assert admin.fleet.revoke_token(token.id) == token.id
            with pytest.raises(AuthError) as info:
                ci.fleet.nodes()
            assert info.value.status_code == 401


def test_analysis_on_the_hub_scoped_by_pool(setup: HubSetup, joined: str) -> None:
    with Client(joined, setup.user) as user:
        out = user.analysis.utilization("-1h", scope=Scope(pool="train"))
        assert out.gpus == 1
        assert out.mean_gpu_util_pct == pytest.approx(30.0)
        with pytest.raises(RequestRejected, match="no node of the hub has pool nope"):
            user.analysis.utilization("-1h", scope=Scope(pool="nope"))
        by_label = user.analysis.waste("-1h", scope={"label": "rack=a"})
        assert by_label.gpu_hours == pytest.approx(out.gpu_hours)
