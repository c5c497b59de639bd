"""Per-instance etcd credentials on a real etcd with authentication on: an etcd of this module's
own (authentication is never turned on in the cluster the other tests share), whose tokens
live 2 seconds. Before it is secured, keys of the earlier layout are put in and moved by
``maoctl federation migrate-keys``; ``maoctl federation secure`` then makes users a and b."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from etcd_kit import EtcdCluster, EtcdMember, etcd_binary
from fastapi.testclient import TestClient
from maoctl_kit import run_maoctl
from waiting import wait_for

from mao.api.app import create_app
from mao.config import Settings
from mao.errors import RegistryUnauthorized
from mao.executor.fake import FakeExecutor
from mao.instance import Instance
from mao.models import DatasetBody, DatasetIn, PipelineIn, ToolIn
from mao.registry.etcd import EtcdRegistry, make_clients
from mao.registry.etcd_auth import AuthSession, EtcdCredentials
from mao.registry.keys import ballot_key, coverage_key, instance_key, schedule_key

pytestmark = [pytest.mark.etcd]

PREFIX = "/fed/"
ROOT_PASSWORD = "root-secret-for-tests"
PATH = "metrics/collect/gather/20261128T120000Z"
OLD_BALLOT = f"ballots/{PATH}/a"  # the earlier layout: the instance came last
OLD_SCHEDULE = "schedules/collect/a"


@dataclass
class Secured:
    cluster: EtcdCluster
    credentials: dict[str, EtcdCredentials]
    credentials_file: Path
    migrated: dict

    @property
    def endpoint(self) -> str:
        return self.cluster.endpoints[0]

    def registry(self, credentials: EtcdCredentials | None) -> EtcdRegistry:
        return EtcdRegistry(make_clients([self.endpoint], timeout=5, credentials=credentials), PREFIX)


def _maoctl(*args: str) -> tuple[int, str, str]:
    return run_maoctl(list(args))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, free_port) -> Iterator[Secured]:
    binary = etcd_binary()
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("no etcd binary: set MAO_TEST_ETCD_BIN or put etcd on PATH")
    root = tmp_path_factory.mktemp("etcd-rbac")
    client_port = free_port()
    peer_port = free_port()
    while peer_port == client_port:
        peer_port = free_port()
    member = EtcdMember("auth1", client_port, peer_port, root / "auth1", root / "auth1.log")
    cluster = EtcdCluster(binary, [member], extra_args=["--auth-token", "simple", "--auth-token-ttl", "2"])
    cluster.start_member(0)
    try:
        cluster.wait_healthy()
        plain = EtcdRegistry(make_clients(cluster.endpoints, timeout=5), PREFIX)
        plain.put(OLD_BALLOT, {"instance": "a", "output_id": "x", "commit": "c"})
        plain.put(OLD_SCHEDULE, {"cron": "0 * * * *", "timezone": "UTC", "instance": "a"})
        plain.put(instance_key("b"), {"name": "b"})  # b is live; a is known by its keys
        plain.close()
        code, out, err = _maoctl(
            "--json", "federation", "migrate-keys", "--endpoint", cluster.endpoints[0], "--prefix", PREFIX
        )
        assert code == 0, out + err
        migrated = json.loads(out)
        password_file = root / "root-password"
        password_file.write_text(ROOT_PASSWORD + "\n")
        credentials_file = root / "credentials.json"
        code, out, err = _maoctl(
            "federation",
            "secure",
            "--endpoint",
            cluster.endpoints[0],
            "--prefix",
            PREFIX,
            "--root-password-file",
            str(password_file),
            "--credentials-file",
            str(credentials_file),
        )
        assert code == 0, out + err
        assert "written to" in out and "MAO_ETCD_PASSWORD" not in out
        written = json.loads(credentials_file.read_text())
        credentials = {n: EtcdCredentials(c["etcd_user"], c["etcd_password"]) for n, c in written.items()}
        yield Secured(cluster, credentials, credentials_file, migrated)
    finally:
        cluster.stop()


def test_migrate_keys_moved_the_earlier_layout(secured: Secured) -> None:
    assert secured.migrated["moved"] == 2 and secured.migrated["left"] == {}
    assert sorted(secured.migrated["keys"]) == [OLD_BALLOT, OLD_SCHEDULE]
    reg = secured.registry(secured.credentials["a"])
    try:
        assert reg.get(ballot_key(PATH, "a")) == {"instance": "a", "output_id": "x", "commit": "c"}
        assert reg.get(schedule_key("collect", "a"))["cron"] == "0 * * * *"
        assert reg.get(OLD_BALLOT) is None and reg.get(OLD_SCHEDULE) is None
    finally:
        reg.close()
    # a second run finds nothing to move (root's password: authentication is on now)
    env_password = os.environ.get("MAO_ETCD_ROOT_PASSWORD")
    os.environ["MAO_ETCD_ROOT_PASSWORD"] = ROOT_PASSWORD
    try:
        code, out, err = _maoctl(
            "--json", "federation", "migrate-keys", "--endpoint", secured.endpoint, "--prefix", PREFIX
        )
    finally:
        if env_password is None:
            os.environ.pop("MAO_ETCD_ROOT_PASSWORD")
        else:
            os.environ["MAO_ETCD_ROOT_PASSWORD"] = env_password
    assert code == 0, out + err
    assert json.loads(out)["moved"] == 0


def test_secure_made_a_user_per_known_instance_in_a_private_file(secured: Secured) -> None:
    assert sorted(secured.credentials) == ["a", "b"]
    assert secured.credentials["a"].user == "mao-a"
    assert stat.S_IMODE(secured.credentials_file.stat().st_mode) == 0o600
    assert secured.credentials["a"].password not in repr(secured.credentials["a"])


def test_an_instance_writes_its_own_keys_and_etcd_refuses_anothers(secured: Secured) -> None:
    a = secured.registry(secured.credentials["a"])
    b = secured.registry(secured.credentials["b"])
    try:
        a.put(ballot_key(PATH, "a"), {"instance": "a"})
        a.put(schedule_key("daily", "a"), {"cron": "0 0 * * *", "instance": "a"})
        lease = a.grant(10)
        a.put(instance_key("a"), {"name": "a"}, lease)
        a.put(coverage_key("collect", "2026-11-28T12:00:00Z", "a"), {"status": "delivered"})  # shared
        for key in (ballot_key(PATH, "b"), schedule_key("daily", "b"), instance_key("b"), instance_key("ab")):
            with pytest.raises(RegistryUnauthorized) as denied:
                a.put(key, {"instance": "a", "forged": True})
            assert denied.value.details["reason"] == "permission_denied"
            assert "mao-a" in denied.value.message
        assert b.get(ballot_key(PATH, "b")) is None  # nothing was written under b's name
        assert b.get(ballot_key(PATH, "a")) == {"instance": "a"}  # b reads a's ballot
        assert set(b.list("ballots/")) == {f"a/{PATH}"}
        a.revoke(lease)  # revoking a lease deletes its keys: a's own
        assert a.get(instance_key("a")) is None
    finally:
        a.close()
        b.close()


def test_an_expired_token_is_replaced_and_the_request_sent_again(secured: Secured) -> None:
    reg = secured.registry(secured.credentials["a"])
    session = reg.clients[0].session
    assert isinstance(session, AuthSession)
    try:
        reg.put(ballot_key(PATH, "a"), {"n": 0})
        assert session.authentications == 1
        # etcd extends a simple token at each use: asked every 3 s, the 2-second token expires
        # between two reads, and a read authenticates again and still answers
        wait_for(
            lambda: reg.get(ballot_key(PATH, "a")) == {"n": 0} and session.authentications >= 2, 40, "a new token", 3.0
        )
        # a token etcd does not know (as after a member restart) is replaced the same way
        session._token = "no-such-token"
        reg.put(ballot_key(PATH, "a"), {"n": 1})
        assert reg.get(ballot_key(PATH, "a")) == {"n": 1}
        assert session._token != "no-such-token"
    finally:
        reg.close()


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_health_names_an_authentication_failure(secured: Secured, tmp_path: Path, password: str | None) -> None:
    settings = Settings(
        instance_name="a",
        data_dir=tmp_path / "a",
        registry_backend="etcd",
        etcd_endpoints=[secured.endpoint],
        registry_prefix=PREFIX,
        etcd_user="mao-a" if password else None,
        etcd_password=password,
        registry_cache_max_stale=0,
    )
    inst = Instance(settings, executor=FakeExecutor({}))
    with TestClient(create_app(instance=inst, background=False)) as client:
        body = client.get("/health").json()
    check = body["checks"]["registry"]
    assert body["ok"] is False and check["ok"] is False
    if password:
        assert check["reason"] == "bad_credentials" and "wrong user name or password" in check["error"]
        assert password not in json.dumps(body)
    else:
        assert check["reason"] == "unauthenticated" and "has no etcd credentials" in check["error"]
    assert "no quorum" not in check["error"]


def test_a_secured_instance_is_healthy(secured: Secured, tmp_path: Path) -> None:
    settings = Settings(
        instance_name="b",
        data_dir=tmp_path / "b",
        registry_backend="etcd",
        etcd_endpoints=[secured.endpoint],
        registry_prefix=PREFIX,
        etcd_user=secured.credentials["b"].user,
        etcd_password=secured.credentials["b"].password,
    )
    inst = Instance(settings, executor=FakeExecutor({}))
    with TestClient(create_app(instance=inst, background=False)) as client:
        body = client.get("/health").json()
    assert body["checks"]["registry"]["ok"] is True, body
    assert secured.credentials["b"].password not in json.dumps(body)


def test_secure_again_adds_a_joining_instance_and_keeps_the_others(secured: Secured, tmp_path: Path) -> None:
    password_file = tmp_path / "root"
    password_file.write_text(ROOT_PASSWORD)
    code, out, err = _maoctl(
        "--json",
        "federation",
        "secure",
        "--endpoint",
        secured.endpoint,
        "--prefix",
        PREFIX,
        "--root-password-file",
        str(password_file),
        "--instance",
        "a",
        "--instance",
        "c",
    )
    assert code == 0, out + err
    done = json.loads(out)
    assert done["auth_enabled_now"] is False and done["users_unchanged"] == {"a": "mao-a"}
    joined = done["credentials"]["c"]
    c = secured.registry(EtcdCredentials(joined["etcd_user"], joined["etcd_password"]))
    try:
        c.put(ballot_key(PATH, "c"), {"instance": "c"})
        with pytest.raises(RegistryUnauthorized):
            c.put(ballot_key(PATH, "a"), {"instance": "c"})
    finally:
        c.close()
    password_file.write_text("not-the-root-password")
    code, out, err = _maoctl(
        "federation",
        "secure",
        "--endpoint",
        secured.endpoint,
        "--prefix",
        PREFIX,
        "--root-password-file",
        str(password_file),
    )
    assert code != 0 and "refused the root password" in out + err


def _collect(spec, on_log) -> int:
    (spec.output_dir / "observations.csv").write_text(f"run {spec.run_id}\n")
    return 0


def _node(secured: Secured, data_dir: Path, user: str | None, password: str | None) -> Instance:
    settings = Settings(
        instance_name="a",
        data_dir=data_dir,
        registry_backend="etcd",
        etcd_endpoints=[secured.endpoint],
        registry_prefix=PREFIX,
        etcd_user=user,
        etcd_password=password,
        registry_cache_max_stale=0,
        push_retries=0,
    )
    inst = Instance(settings, executor=FakeExecutor({"img/collect": _collect}))
    inst.setup()
    return inst


def test_a_run_names_refused_credentials_in_its_log(secured: Secured, tmp_path: Path) -> None:
    remote = tmp_path / "remotes" / "observations.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(remote)], check=True)
    a = secured.credentials["a"]
    inst = _node(secured, tmp_path / "a", a.user, a.password)
    try:  # defined and read with a's credentials: the instance keeps the last-known definitions
        inst.catalog.add_tool(ToolIn(name="collector", image="img/collect"))
        inst.catalog.add_dataset(DatasetIn(name="observations", body=DatasetBody(master=str(remote))))
        steps = [{"name": "gather", "tool": "collector", "output_dataset": "observations"}]
        inst.pipelines.init(PipelineIn.model_validate({"name": "collect", "steps": steps}))
        inst.catalog.get_tool("collector")
        inst.catalog.get_dataset("observations")
    finally:
        inst.close()
    inst = _node(secured, tmp_path / "a", a.user, "a-wrong-password")
    try:
        run = inst.store.get_run(inst.runner.run_sync("collect", trigger="api"))
        log = "\n".join(line.line for line in inst.store.logs(run.id))
    finally:
        inst.close()
    assert run.steps[0].details["federation"] == "pending"  # the merge waits for good credentials
    assert "the registry refused this instance's etcd credentials" in log
    assert "wrong user name or password" in log and "a-wrong-password" not in log


def test_a_peer_url_goes_with_one_joining_instance(secured: Secured, tmp_path: Path) -> None:
    password_file = tmp_path / "root"
    password_file.write_text(ROOT_PASSWORD)
    args = ["federation", "secure", "--endpoint", secured.endpoint, "--prefix", PREFIX]
    args += ["--root-password-file", str(password_file), "--peer-url", "http://127.0.0.1:2380"]
    code, out, err = _maoctl(*args)
    assert code != 0 and "--peer-url goes with exactly one --instance" in out + err
    code, out, err = _maoctl(*args, "--instance", "bad name")
    assert code != 0 and "invalid instance name" in out + err
