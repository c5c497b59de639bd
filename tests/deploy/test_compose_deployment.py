"""The compose deployment for real: images from a debootstrap'd Debian base, `maoctl instance
install`, the four services up and healthy, a pipeline run through the deployed executor into
a dataset on the SSH git server, the stack stopped and restarted, a second deployment joined.

The tests run in order on one deployment (module scope); the whole file takes a few minutes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from deploy_kit import (
    ETCD_TAG,
    EXECUTOR_TAG,
    ORCHESTRATOR_TAG,
    POSTGRES_TAG,
    SERVICES,
    TOOL_TAG,
    Deployment,
    free_port,
    run,
)
from waiting import wait_for

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.ssh,
    pytest.mark.timeout(600),
    # one worker, in order: the tests share one deployment, its compose project names and subnets
    pytest.mark.xdist_group("deploy"),
]

SUBNETS = list(ipaddress.ip_network(os.environ.get("MAO_TEST_DEPLOY_SUBNET", "172.31.89.0/24")).subnets(new_prefix=27))


def git(repo: Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args]).stdout


def install(
    tmp: Path,
    name: str,
    env: dict[str, str],
    public_ip: str,
    keys: Path,
    subnets: tuple,
    *extra: str,
) -> Deployment:
    dep = Deployment(tmp / name, name, env)
    socket_path = env["DOCKER_HOST"][len("unix://") :]
    run(
        [
            sys.executable,
            "-m",
            "mao.cli.main",
            "instance",
            "install",
            "--non-interactive",
            "--skip-checks",
            "--install-dir",
            str(dep.install_dir),
            "--instance-name",
            name,
            "--public-ip",
            public_ip,
            "--git-email",
            f"{name}@example.org",
            "--ssh-key-dir",
            str(keys),
            "--api-port",
            str(dep.api_port),
            "--docker-socket",
            socket_path,
            "--etcd-client-port",
            str(free_port()),
            "--etcd-peer-port",
            str(free_port(public_ip)),
            "--orchestrator-image",
            ORCHESTRATOR_TAG,
            "--executor-image",
            EXECUTOR_TAG,
            "--etcd-image",
            ETCD_TAG,
            "--postgres-image",
            POSTGRES_TAG,
            "--services-subnet",
            str(subnets[0]),
            "--steps-subnet",
            str(subnets[1]),
            *extra,
        ],
        env=env,
    )
    return dep


def isolate_steps(dep: Deployment) -> bool:
    """An engine with --iptables=false has no rules between its bridges; on a normal engine
    Docker isolates networks from each other. The same for the steps' bridge: no forwarding."""
    compose = yaml.safe_load((dep.install_dir / "docker-compose.yaml").read_text())
    bridge = compose["networks"]["steps"]["driver_opts"]["com.docker.network.bridge.name"]
    try:
        Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding").write_text("0\n")
    except OSError:
        return False
    return True


def start(dep: Deployment) -> None:
    dep.compose("up", "-d", timeout=400)
    dep.isolated = isolate_steps(dep)
    dep.wait_healthy()


def marketplace(tmp: Path) -> Path:
    market = tmp / "market"
    market.mkdir(exist_ok=True)
    (market / "federations.json").write_text(
        json.dumps(
            [{"name": "deploylab", "description": "deployment tests", "operator": "Ops", "contact": "ops@example.org"}]
        )
    )
    (market / "tools.json").write_text(
        json.dumps(
            [{"name": "collector", "image": TOOL_TAG, "author": "Lab", "description": "collects one observation"}]
        )
    )
    (market / "pipelines.json").write_text(
        json.dumps(
            [
                {
                    "name": "collect",
                    "description": "one observation",
                    "steps": [{"name": "collect", "tool": "collector", "output_dataset": "obs"}],
                },
                {
                    "name": "slow",
                    "description": "a long step",
                    "steps": [{"name": "wait", "tool": "collector", "output_dataset": "obs", "cmd": ["sleep", "25"]}],
                },
            ]
        )
    )
    return market


@pytest.fixture(scope="module")
def stack(tmp_path_factory, deploy_env, public_ip, images, ssh_git) -> Iterator[dict]:
    keys, url_base, repo_root = ssh_git
    tmp = tmp_path_factory.mktemp("deploy")
    repo_name = f"deploy-{uuid.uuid4().hex[:8]}.git"
    remote = repo_root / repo_name
    run(["git", "init", "-q", "--bare", str(remote)])
    first = install(tmp, "mao-a", deploy_env, public_ip, keys, (SUBNETS[0], SUBNETS[1]), "--standalone")
    state = {
        "tmp": tmp,
        "first": first,
        "remote": remote,
        "url": f"{url_base}/{repo_name}",
        "keys": keys,
        "deployments": [first],
        "env": deploy_env,
        "public_ip": public_ip,
    }
    try:
        start(first)
        yield state
    finally:
        for dep in state["deployments"]:
            dep.destroy()
            # the deployments' own step containers only: other tests run theirs on the same engine
            leftovers = run(
                ["docker", "ps", "-aq", "--filter", "label=mao.run_id", "--filter", f"label=mao.instance={dep.name}"],
                env=deploy_env,
                check=False,
            )
            for cid in leftovers.stdout.split():
                run(["docker", "rm", "-f", cid], env=deploy_env, check=False)
        run(["rm", "-rf", str(remote)], check=False)


def test_four_healthy_services_run_a_pipeline_into_the_ssh_dataset(stack) -> None:
    dep: Deployment = stack["first"]
    assert {service: dep.health_of(service) for service in SERVICES} == dict.fromkeys(SERVICES, "healthy")
    assert dep.api("GET", "/registry/tools").status_code == 200
    assert httpx.get(dep.url + "/registry/tools", timeout=10).status_code == 401
    for service in ("orchestrator", "executor"):  # maoctl runs as the image's user mao, not root
        cid = dep.compose("ps", "-q", service).stdout.strip()
        top = run(["docker", "top", cid, "-eo", "pid,uid,args"], env=dep.env).stdout.splitlines()[1:]
        assert {line.split()[1] for line in top if "maoctl" in line} == {"10001"}, top

    dep.maoctl("dataset", "add", "--name", "obs", "--git-url", stack["url"])
    dep.maoctl(
        "instance",
        "init",
        "--non-interactive",
        "--marketplace-url",
        str(marketplace(stack["tmp"])),
        "--pipeline",
        "collect",
        "--pipeline",
        "slow",
        "--yes",
        "--cron",
        "0 3 * * *",
    )
    run_id = dep.api("POST", "/pipeline/run", json={"name": "collect"}).json()["run_id"]
    record = dep.wait_run(run_id)
    assert record["status"] == "succeeded", record
    assert git(stack["remote"], "show", "ground-truth:observations.csv").startswith("time,source,value\n")

    listed = dep.maoctl("runs", "list", "--json").stdout
    assert run_id in [r["id"] for r in json.loads(listed)]
    logs = dep.maoctl("runs", "logs", str(run_id)).stdout
    assert "collected one observation" in logs


def _probe(dep: Deployment, target: str, request: str | None = None) -> str:
    """From a container on the steps' network: 'refused' / 'unreachable', or the first reply line."""
    host, port = target.rsplit(":", 1)
    script = f"exec 3<>/dev/tcp/{host}/{port} || exit 3; "
    script += f"printf '{request}' >&3; head -n1 <&3" if request else "echo connected"
    network = f"mao-{dep.name}-steps"
    proc = run(
        ["docker", "run", "--rm", "--network", network, "--entrypoint", "timeout", TOOL_TAG, "5", "bash", "-c", script],
        env=dep.env,
        check=False,
        timeout=60,
    )
    return proc.stdout.strip() or f"unreachable (exit {proc.returncode})"


def _address(dep: Deployment, service: str) -> str:
    cid = dep.compose("ps", "-q", service).stdout.strip()
    out = run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", cid], env=dep.env).stdout
    networks = json.loads(out)
    return next(v["IPAddress"] for k, v in networks.items() if not k.endswith("-steps"))


def test_steps_reach_neither_etcd_nor_postgres_and_the_executor_only_with_its_token(stack) -> None:
    dep: Deployment = stack["first"]
    if not dep.isolated:
        pytest.skip("cannot turn forwarding off on the steps' bridge (read-only /proc/sys)")
    assert _probe(dep, f"{_address(dep, 'postgres')}:5432").startswith("unreachable")
    assert _probe(dep, f"{_address(dep, 'etcd')}:2379").startswith("unreachable")
    assert _probe(dep, f"{_address(dep, 'orchestrator')}:8080").startswith("unreachable")
    assert _probe(dep, "executor:8081", r"GET /steps HTTP/1.0\r\n\r\n").split()[1:2] == ["401"]


def test_down_and_up_keep_registry_runs_schedules_and_clones_and_interrupt_the_running_run(stack) -> None:
    dep: Deployment = stack["first"]
    slow = dep.api("POST", "/pipeline/run", json={"name": "slow"}).json()["run_id"]
    wait_for(lambda: dep.api("GET", f"/runs/{slow}").json()["status"] == "running", 60, "the slow run to start", 0.5)

    def step_container() -> str:
        filters = ["--filter", f"label=mao.run_id={slow}", "--filter", "label=mao.pipeline=slow"]
        return run(["docker", "ps", "-q", *filters], env=dep.env).stdout.strip()

    wait_for(step_container, 60, "the slow run's step container", 0.5)
    dep.compose("stop", "-t", "5")
    # the step container outlives the stack, and ends when its command does
    wait_for(lambda: not step_container(), 60, "the slow run's step container to end", 0.5)
    dep.compose("down")
    start(dep)

    assert dep.api("GET", f"/runs/{slow}").json()["status"] == "interrupted"
    runs = dep.api("GET", "/runs").json()["runs"]
    assert any(r["status"] == "succeeded" for r in runs)
    assert "collector" in dep.api("GET", "/registry/tools").json()
    assert {j["id"] for j in dep.api("GET", "/jobs").json()["jobs"]} == {"collect", "slow"}
    assert (dep.install_dir / "data").is_dir() and any((dep.install_dir / "data").rglob("observations.csv"))

    dep.compose("restart", "etcd")
    dep.wait_healthy()
    again = dep.wait_run(dep.api("POST", "/pipeline/run", json={"name": "collect"}).json()["run_id"])
    assert again["status"] == "succeeded", again
    assert git(stack["remote"], "show", "ground-truth:observations.csv").count("\n") == 3


def test_a_second_deployment_joins_the_federation(stack) -> None:
    first: Deployment = stack["first"]
    ip = stack["public_ip"]
    peer_port = free_port(ip)
    added = first.maoctl("federation", "member", "add", "mao-b", "--peer-url", f"http://{ip}:{peer_port}").stdout
    cluster = re.search(r'ETCD_INITIAL_CLUSTER="([^"]+)"', added)
    assert cluster, added
    second = Deployment(stack["tmp"] / "mao-b", "mao-b", stack["env"])
    stack["deployments"].append(second)
    socket_path = stack["env"]["DOCKER_HOST"][len("unix://") :]
    run(
        [
            sys.executable,
            "-m",
            "mao.cli.main",
            "instance",
            "install",
            "--non-interactive",
            "--skip-checks",
            "--federate",
            "--etcd-initial-cluster",
            cluster[1],
            "--install-dir",
            str(second.install_dir),
            "--instance-name",
            "mao-b",
            "--public-ip",
            ip,
            "--git-email",
            "b@example.org",
            "--ssh-key-dir",
            str(stack["keys"]),
            "--api-port",
            str(second.api_port),
            "--docker-socket",
            socket_path,
            "--etcd-client-port",
            str(free_port()),
            "--etcd-peer-port",
            str(peer_port),
            "--orchestrator-image",
            ORCHESTRATOR_TAG,
            "--executor-image",
            EXECUTOR_TAG,
            "--etcd-image",
            ETCD_TAG,
            "--postgres-image",
            POSTGRES_TAG,
            "--services-subnet",
            str(SUBNETS[2]),
            "--steps-subnet",
            str(SUBNETS[3]),
        ],
        env=stack["env"],
    )
    start(second)

    assert "collector" in second.api("GET", "/registry/tools").json()
    assert second.api("GET", "/registry/datasets/obs").json()["master"] == stack["url"]
    for dep in (first, second):
        status = json.loads(dep.maoctl("federation", "status", "--json").stdout)
        names = {m["name"] for m in status["members"]}
        assert names == {"mao-a", "mao-b"}, status
