"""WhiskMesh on three Docker hosts joined in one swarm: the overlay carries traffic between hosts,
maps reach every host, namespaces stay isolated across hosts, and the platform survives a dead
host and a broker restart. The tests run in this file's order (the host's death comes late)."""
import concurrent.futures
import os
import re
import threading
import time
import uuid

import pytest

from conftest import Placement, wait_until


@pytest.fixture(scope="module")
def guest(cluster):
    return Placement(cluster, cluster.guest)


def test_a_second_run_of_the_playbook_changes_nothing(cluster):
    run = cluster.ansible("site.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    recap = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", run.stdout, re.M)
    assert {host for host, *_ in recap} == set(cluster.addresses), run.stdout[-2000:]
    for host, ok, changed, unreachable, failed in recap:
        assert int(ok) > 0 and (changed, unreachable, failed) == ("0", "0", "0"), f"{host}: changed={changed} failed={failed}"


def test_instances_on_two_hosts_exchange_messages_over_the_overlay(cluster, guest):
    left, right = guest.on(0), guest.on(1)
    hosts = cluster.invoker_hosts[0], cluster.invoker_hosts[1]
    assert cluster.addresses[hosts[0]] != cluster.addresses[hosts[1]]
    run = uuid.uuid4().hex[:6]
    pong = cluster.invoke(right, {"role": "pong", "instanceID": f"pong-{run}", "timeout": 90}, cluster.guest, blocking=False)
    assert pong.status_code == 202, pong.text
    size = 64 * 1024 * 1024
    reply = cluster.invoke(left, {"role": "ping", "instanceID": f"ping-{run}", "peer": f"pong-{run}", "count": 1000,
                                  "size": size, "timeout": 90}, cluster.guest)
    assert reply.status_code == 200, reply.text
    result = reply.json()["response"]["result"]
    assert result.get("roundTrips") == 1000, result
    assert result["largeBytes"] == size and len(result["sha256"]) == 64
    # Where each ran, from the map's invoker field: invoker0 and invoker1, on different hosts.
    assert result["invokers"] == {f"ping-{run}": 0, f"pong-{run}": 1}
    echoed = wait_until("pong's record", lambda: cluster.activation(pong.json()["activationId"], cluster.guest).status_code == 200 and
                        cluster.activation(pong.json()["activationId"], cluster.guest).json())
    assert echoed["response"]["result"] == {"me": f"pong-{run}", "echoed": 1000 + 1, "bytes": 1000 * 64 + size}


def test_every_invoker_and_the_controller_serve_prometheus_metrics_that_count_their_activations(cluster, guest):
    def counted(url):
        text = cluster.session.get(url, timeout=10).text
        samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return sum(float(v) for k, v in samples.items() if k.startswith("whisk_activations_total{") and 'status="success"' in k)

    urls = {f"invoker{i}": f"http://{cluster.addresses[host]}:3240/metrics" for i, host in cluster.invoker_hosts.items()}
    urls["controller"] = cluster.api_host + "/metrics"
    before = {who: counted(url) for who, url in urls.items()}
    for invoker in cluster.invoker_hosts:
        reply = cluster.invoke(guest.on(invoker), {"role": "echo", "n": 1}, cluster.guest)
        assert reply.status_code == 200, reply.text
    after = {who: counted(url) for who, url in urls.items()}
    for invoker in cluster.invoker_hosts:
        assert after[f"invoker{invoker}"] - before[f"invoker{invoker}"] == 1, (before, after)
    assert after["controller"] - before["controller"] == len(cluster.invoker_hosts), (before, after)


def test_an_instance_on_one_host_appears_in_the_other_hosts_map_files(cluster, guest):
    instance = f"seen-{uuid.uuid4().hex[:6]}"
    hold = cluster.invoke(guest.on(0), {"role": "hold", "instanceID": instance, "seconds": 15}, cluster.guest, blocking=False)
    assert hold.status_code == 202, hold.text
    for host in cluster.addresses:
        wait_until(f"{instance} is in {host}'s map file", lambda: instance in cluster.map_ids(host, "guest"), timeout=30)
    # And it leaves every host's file when its activation ends.
    for host in cluster.addresses:
        wait_until(f"{instance} left {host}'s map file", lambda: instance not in cluster.map_ids(host, "guest"), timeout=60)


def test_a_namespace_cannot_reach_another_namespaces_instance_on_another_host(cluster):
    tag = uuid.uuid4().hex[:6]
    tenant_a = cluster.create_namespace(f"iso-a-{tag}")
    tenant_b = cluster.create_namespace(f"iso-b-{tag}")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        placement_a, placement_b = pool.map(lambda auth: Placement(cluster, auth, count=12), [tenant_a, tenant_b])
    target = f"target-{tag}"
    hold = cluster.invoke(placement_a.on(0), {"role": "hold", "instanceID": target, "seconds": 60}, tenant_a, blocking=False)
    assert hold.status_code == 202, hold.text
    entry = wait_until(f"{target} is in A's map", lambda: next(
        (e for e in cluster.address_map(tenant_a)["instances"] if e["id"] == target), None), timeout=30)
    assert entry["invoker"] == 0
    assert target not in {e["id"] for e in cluster.address_map(tenant_b)["instances"]}, "B's map shows A's instance"
    # Both probes run on invoker1, another host than the target.
    from_b = cluster.invoke(placement_b.on(1), {"role": "probe", "ip": entry["ip"], "instanceID": f"spy-{tag}"}, tenant_b)
    from_a = cluster.invoke(placement_a.on(1), {"role": "probe", "ip": entry["ip"], "instanceID": f"friend-{tag}"}, tenant_a)
    assert from_a.status_code == 200 and from_b.status_code == 200, from_a.text + from_b.text
    assert from_a.json()["response"]["result"]["reached"] is True, "positive control: A's own instance on another host reaches it"
    assert from_b.json()["response"]["result"]["reached"] is False, from_b.json()["response"]["result"]


def test_a_peer_on_the_overlay_cannot_drive_another_instances_action_proxy(cluster, guest):
    tag = uuid.uuid4().hex[:6]
    target = f"proxy-{tag}"
    hold = cluster.invoke(guest.on(0), {"role": "hold", "instanceID": target, "seconds": 30}, cluster.guest, blocking=False)
    assert hold.status_code == 202, hold.text
    entry = wait_until(f"{target} is in the map", lambda: next(
        (e for e in cluster.address_map(cluster.guest)["instances"] if e["id"] == target), None), timeout=30)

    def probe(port, instance):
        reply = cluster.invoke(guest.on(1), {"role": "probe", "ip": entry["ip"], "port": port, "instanceID": instance}, cluster.guest)
        assert reply.status_code == 200, reply.text
        return reply.json()["response"]["result"]

    assert probe(7070, f"control-{tag}")["reached"] is True, "positive control: the instance's own port is reachable"
    refused = probe(8080, f"intruder-{tag}")
    assert refused["reached"] is False, "the action proxy (/init, /run) answers on the overlay"


def test_every_activation_accepted_across_a_broker_restart_ends_with_a_record(cluster, guest):
    action = guest.on(0)
    accepted, refused = [], []
    stop = threading.Event()
    # Durability proper: activations that sit unconsumed in a stopped invoker's topic while the
    # broker restarts (a memory broker would lose them; these must run once invoker1 is back).
    parked_host = cluster.invoker_hosts[1]
    cluster.host(parked_host, "docker", "stop", "whiskmesh-invoker1", timeout=120)
    parked = []
    for i in range(5):
        reply = cluster.invoke(guest.on(1), {"role": "where", "instanceID": f"parked-{i}-{uuid.uuid4().hex[:4]}"}, cluster.guest, blocking=False)
        assert reply.status_code == 202, reply.text
        parked.append(reply.json()["activationId"])

    def submit():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                reply = cluster.invoke(action, {"role": "echo", "n": n}, cluster.guest, blocking=False)
            except Exception as error:  # a refused or broken connection: not accepted
                refused.append(repr(error))
            else:
                (accepted if reply.status_code == 202 else refused).append(reply.json().get("activationId") or reply.text)
            time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        worker = pool.submit(submit)
        time.sleep(4)
        before = len(accepted)
        cluster.host(cluster.broker_host, "docker", "kill", "whiskmesh-broker")
        time.sleep(3)
        cluster.host(cluster.broker_host, "docker", "start", "whiskmesh-broker")
        cluster.host(parked_host, "docker", "start", "whiskmesh-invoker1")
        time.sleep(10)
        stop.set()
        worker.result()
    print(f"broker restart: {len(accepted)} accepted ({before} before the kill), {len(refused)} refused")
    assert before > 0 and len(accepted) > before, f"accepted {len(accepted)} ({before} before the kill), refused {refused}"
    missing = set(accepted)
    deadline = time.monotonic() + 180
    while missing and time.monotonic() < deadline:
        missing = {a for a in missing if cluster.activation(a, cluster.guest).status_code != 200}
        time.sleep(1)
    assert not missing, f"{len(missing)} of {len(accepted)} accepted activations have no record: {sorted(missing)[:5]}"
    for activation in accepted[:3] + accepted[-3:]:
        record = cluster.activation(activation, cluster.guest).json()
        assert record["response"]["success"] is True, record
    for activation in parked:
        record = wait_until(f"parked activation {activation}'s record", lambda: (
            lambda reply: reply.status_code == 200 and reply.json())(cluster.activation(activation, cluster.guest)), timeout=120)
        assert record["response"]["success"] is True, record
        assert record["response"]["result"]["invoker"] == 1, "it waited in invoker1's topic through the broker's restart"
    wait_until("invoker1 is up again", lambda: cluster.invoker_states().get("invoker1/1") == "up", timeout=120)


def test_a_dead_hosts_entries_leave_the_other_maps_and_new_work_runs_elsewhere(cluster, guest):
    victim = 2
    victim_host = cluster.invoker_hosts[victim]
    survivors = [host for host in cluster.addresses if host != victim_host]
    instance = f"doomed-{uuid.uuid4().hex[:6]}"
    hold = cluster.invoke(guest.on(victim), {"role": "hold", "instanceID": instance, "seconds": 120}, cluster.guest, blocking=False)
    assert hold.status_code == 202, hold.text
    for host in survivors:
        wait_until(f"{instance} is in {host}'s map file", lambda: instance in cluster.map_ids(host, "guest"), timeout=30)
    subprocess_kill = __import__("subprocess").run(["docker", "kill", victim_host], capture_output=True, text=True)
    assert subprocess_kill.returncode == 0, subprocess_kill.stderr
    killed = time.monotonic()
    try:
        gone = {}
        while len(gone) < len(survivors) and time.monotonic() - killed < 30:
            for host in survivors:
                if host not in gone and instance not in cluster.map_ids(host, "guest"):
                    gone[host] = time.monotonic() - killed
            time.sleep(0.1)
        print(f"dead host's entry left the survivors' map files after {gone}")
        assert set(gone) == set(survivors), f"still in the map files of {set(survivors) - set(gone)} after 30 s"
        assert max(gone.values()) < 5, f"the entry took {gone} s to leave"
        # Once the controller counts the invoker out, work whose home it was runs on the others.
        wait_until(f"invoker{victim} is no longer up", lambda: cluster.invoker_states().get(f"invoker{victim}/{victim}") != "up", timeout=60)
        for i in range(3):
            reply = cluster.invoke(guest.on(victim), {"role": "where", "instanceID": f"moved-{i}-{instance}"}, cluster.guest)
            assert reply.status_code == 200, reply.text
            assert reply.json()["response"]["result"]["invoker"] in set(cluster.invoker_hosts) - {victim}
    finally:
        # The host comes back: its engine restarts the invoker (restart policy), which rejoins.
        __import__("subprocess").run(["docker", "start", victim_host], capture_output=True)
    wait_until(f"invoker{victim} is up again", lambda: cluster.invoker_states().get(f"invoker{victim}/{victim}") == "up", timeout=120)


def test_stopping_an_invokers_container_removes_its_action_containers(cluster, guest):
    invoker, host = 1, cluster.invoker_hosts[1]
    reply = cluster.invoke(guest.on(invoker), {"role": "echo", "n": 1}, cluster.guest)
    assert reply.status_code == 200, reply.text

    def action_containers():
        return cluster.host(host, "docker", "ps", "-aq", "--filter", f"label=org.whiskmesh.invoker={invoker}").stdout.split()

    assert action_containers(), "positive control: the invoker has action containers before it stops"
    cluster.host(host, "docker", "stop", f"whiskmesh-invoker{invoker}", timeout=180)
    try:
        assert action_containers() == [], "the invoker's action containers outlived its container"
    finally:
        cluster.host(host, "docker", "start", f"whiskmesh-invoker{invoker}")
    wait_until(f"invoker{invoker} is up again", lambda: cluster.invoker_states().get(f"invoker{invoker}/{invoker}") == "up", timeout=120)


def test_the_teardown_playbook_removes_what_the_deployment_created(cluster):
    """Last: it takes the deployment down (the hosts stay for scripts/cluster down)."""
    run = cluster.ansible("teardown.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for host in cluster.addresses:
        for kind in ("ps -a", "volume ls", "network ls"):
            left = cluster.host(host, "sh", "-c", f"docker {kind} -q --filter label=org.whiskmesh.managed=true").stdout.split()
            assert left == [], f"{host}: docker {kind} still lists {left}"
        images = cluster.host(host, "docker", "images", "-q", "whiskmesh/*").stdout.split()
        assert images == [], f"{host}: images left {images}"
        assert cluster.host(host, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "inactive"
        assert cluster.host(host, "test", "-e", "/var/lib/whiskmesh", check=False).returncode == 1
    assert not os.path.exists(os.path.join(cluster.state, "wskprops"))
