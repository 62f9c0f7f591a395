"""Fixtures for the cluster tests: a WhiskMesh deployment on several Docker hosts of this machine.

scripts/test brings the cluster up with `scripts/cluster up 3` (the same ansible playbook a user
runs), points WHISK_CLUSTER_STATE at its state folder and WHISK_CLUSTER_NAME at its name, runs
these tests, and takes the cluster down again. Without a cluster the tests fail; they never skip.
Traffic goes only to the cluster hosts' own addresses, which scripts/cluster created.
"""
import base64
import concurrent.futures
import glob
import json
import os
import subprocess
import time
import uuid

import pytest
import requests
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def wait_until(what, predicate, timeout=60.0, interval=0.2):
    """Polls `predicate` until it returns something truthy; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (requests.RequestException, subprocess.SubprocessError, ValueError, KeyError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting until {what} (last: {last!r})")


class Cluster:
    """The deployed cluster: its API, its hosts, and what the playbook wrote."""

    def __init__(self, state):
        self.state = state
        self.name = os.environ.get("WHISK_CLUSTER_NAME", "whiskmesh")
        props = dict(line.split("=", 1) for line in open(os.path.join(state, "wskprops")).read().split())
        self.api_host = props["APIHOST"]
        self.guest = props["AUTH"]
        self.token = open(os.path.join(state, "secrets", "internal-token")).read().split()[0]
        inventory = yaml.safe_load(open(os.path.join(state, "inventory.yml")))["all"]["children"]
        self.addresses = {host: spec["whiskmesh_address"] for host, spec in inventory["swarm_managers"]["hosts"].items()}
        self.invoker_hosts = {spec["whiskmesh_invoker_id"]: host for host, spec in inventory["invokers"]["hosts"].items()}
        self.broker_host = next(iter(inventory["broker"]["hosts"]))
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))

    # The REST API

    def request(self, method, path, auth=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        return self.session.request(method, self.api_host + path, headers=headers, timeout=kwargs.pop("timeout", 180), **kwargs)

    def create_namespace(self, name):
        reply = self.request("PUT", f"/internal/v1/namespaces/{name}", headers={"X-Whisk-Internal-Token": self.token})
        assert reply.status_code in (200, 201), reply.text
        identity = reply.json()
        return f"{identity['uuid']}:{identity['key']}"

    def create_action(self, name, code, auth, timeout_ms=120_000):
        body = {"exec": {"kind": "python:3", "code": code}, "limits": {"timeout": timeout_ms}}
        reply = self.request("PUT", f"/api/v1/namespaces/_/actions/{name}?overwrite=true", auth=auth, json=body)
        assert reply.status_code == 200, reply.text

    def invoke(self, name, params, auth, blocking=True):
        query = "?blocking=true" if blocking else ""
        return self.request("POST", f"/api/v1/namespaces/_/actions/{name}{query}", auth=auth, json=params)

    def activation(self, activation_id, auth):
        return self.request("GET", f"/api/v1/namespaces/_/activations/{activation_id}", auth=auth, timeout=30)

    def address_map(self, auth):
        reply = self.request("GET", "/api/v1/namespaces/_/addressmap", auth=auth, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def invoker_states(self):
        return self.request("GET", "/invokers", timeout=10).json()

    # The hosts

    def host(self, name, *command, check=True, timeout=120):
        return subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, check=check, timeout=timeout)

    def map_ids(self, host, namespace):
        """The instance IDs in `namespace`'s map.json on `host`, as its containers see them."""
        out = self.host(host, "sh", "-c", f"cat /var/lib/whiskmesh/addressmap/{namespace}-*/map.json", check=False).stdout
        return {entry["id"] for entry in json.loads(out)["instances"]} if out.strip() else set()

    def ansible(self, playbook):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible", "ansible.cfg"))
        return subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(self.state, "inventory.yml"),
                               os.path.join(ROOT, "ansible", playbook)], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="session")
def cluster():
    state = os.environ.get("WHISK_CLUSTER_STATE")
    assert state and os.path.exists(os.path.join(state, "wskprops")), \
        "no cluster: run these tests through scripts/test, which brings one up with scripts/cluster"
    cluster = Cluster(state)
    wait_until("every invoker is up", lambda: all(
        cluster.invoker_states().get(f"invoker{i}/{i}") == "up" for i in cluster.invoker_hosts), timeout=120)
    return cluster


def mesh_source():
    """One action that plays every role the tests need; ping and pong are the examples' code."""
    ping = open(os.path.join(ROOT, "examples", "pingpong", "ping.py")).read().replace("def main(", "def ping_main(")
    pong = open(os.path.join(ROOT, "examples", "pingpong", "pong.py")).read().replace("def main(", "def pong_main(")
    return ping + "\n" + pong + "\n" + open(os.path.join(os.path.dirname(__file__), "mesh_roles.py")).read()


class Placement:
    """Actions of one namespace by the invoker they run on (home invokers come from a hash)."""

    def __init__(self, cluster, auth, count=18):
        self.by_invoker = {}
        source = mesh_source()
        names = [f"mesh-{i}" for i in range(count)]
        for name in names:
            cluster.create_action(name, source, auth)
        run = uuid.uuid4().hex[:6]

        def where(name):
            reply = cluster.invoke(name, {"role": "where", "instanceID": f"where-{run}-{name}"}, auth)
            assert reply.status_code == 200, reply.text
            return name, reply.json()["response"]["result"]["invoker"]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            for name, invoker in pool.map(where, names):
                self.by_invoker.setdefault(invoker, []).append(name)

    def on(self, invoker):
        assert self.by_invoker.get(invoker), f"none of the actions is at home on invoker{invoker}: {self.by_invoker}"
        return self.by_invoker[invoker][0]
