"""Benchmarks across hosts: a cluster of three Docker hosts on this machine (`scripts/cluster up 3`,
the ansible playbook a user runs), where instances on different hosts talk over the overlay's
VXLAN. In one run, with the same-host figures beside the cross-host ones:

1. message passing (benchmark 1): SDK, raw TCP and Redis BLPOP between two instances on the same
   host and on two hosts, the transports interleaved trial by trial within one exchange, the
   placements alternating;
2. address-map propagation (benchmark 3): watchers on two hosts see a probe's entry appear and go;
3. what the durable broker costs: warm blocking invokes with Tansu on S3 (SeaweedFS) and with the
   memory broker, each with the consumers' fetch-wait floor it needs, in interleaved rounds.

Parts 1 and 2 run twice (run 1, run 2); docs/benchmarks.md shows both and marks where they disagree
by more than 25 %.

    scripts/bench cluster
"""
import json
import os
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402
import messaging  # noqa: E402
import propagation as propagation_bench  # noqa: E402

NAME = "wmbench"
REDIS_IMAGE = messaging.REDIS_IMAGE
TRANSPORTS = ["tcp", "sdk", "redis"]
PLAN = ([{"kind": "count", "n": n, "trials": t} for n, t in [(1, 200), (100, 20), (1000, 5)]] +
        [{"kind": "size", "bytes": b, "trials": t} for b, t in [(64, 200), (64 << 10, 50), (1 << 20, 20), (32 << 20, 5), (128 << 20, 5)]])
PROBES = 120
INVOKES = 200
# (storage, consumers' minimum fetch wait in ms): the durable default, the memory broker as
# scripts/run uses it, and the memory broker with the durable one's floor (which part is which).
BROKERS = [("s3", 100), ("memory", 0), ("memory", 100)]
ROUNDS = 2
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
NOOP = "def main(args):\n    return {}\n"


def fnv1a(text):
    value = 0xcbf29ce484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return value


def named_for(invoker, prefix, count=3):
    """A guest action name whose home invoker is `invoker`: the controller hashes
    "<namespace>/<fully qualified name>" (see ShardingBalancer.schedule)."""
    for i in range(1000):
        name = "%s-%d" % (prefix, i)
        if fnv1a("guest/guest/" + name) % count == invoker:
            return name
    raise RuntimeError("no name found")


class Cluster(wb.Stack):
    """The benchmark's own cluster: three Docker hosts, deployed by the playbook, removed at the end."""

    def __init__(self):
        self.run = "%s-%s" % (NAME, os.urandom(3).hex())
        self.state = os.path.join(wb.ROOT, ".local", "cluster-" + NAME)
        self.env = dict(os.environ, WHISK_CLUSTER_NAME=NAME)
        self.processes = {}
        self.extra = ["-e", "whiskmesh_invoker_user_memory='8192 MB'", "-e", "whiskmesh_invoker_prewarm=1"]

    def script(self, *args, check=True):
        result = subprocess.run([os.path.join(wb.ROOT, "scripts", "cluster"), *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError("scripts/cluster %s failed:\n%s" % (" ".join(args), result.stderr[-3000:]))
        return result.stdout

    def start(self):
        wb.log("bringing up the benchmark cluster (scripts/cluster up 3)")
        self.script("down", check=False)
        self.script("up", "3", *self.extra)
        self.read_state()
        self.wait_invokers()
        return self

    def read_state(self):
        props = dict(line.split("=", 1) for line in open(os.path.join(self.state, "wskprops")).read().split())
        self.api = props["APIHOST"]
        inventory = yaml.safe_load(open(os.path.join(self.state, "inventory.yml")))["all"]["children"]
        self.addresses = {h: spec["whiskmesh_address"] for h, spec in inventory["swarm_managers"]["hosts"].items()}
        self.hosts = {spec["whiskmesh_invoker_id"]: h for h, spec in inventory["invokers"]["hosts"].items()}
        self.invoker_count = len(self.hosts)
        self.inventory = os.path.join(self.state, "inventory.yml")

    def stop(self):
        wb.log("removing the benchmark cluster")
        self.script("down", check=False)

    def host(self, invoker, *command, stdin=None):
        result = subprocess.run(["docker", "exec", "-i", self.hosts[invoker], *command], input=stdin, capture_output=True)
        if result.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(command), result.stderr.decode(errors="replace")[-2000:]))
        return result.stdout.decode().strip()

    def overlay(self, namespace="guest"):
        names = self.host(0, "docker", "network", "ls", "--filter", "label=org.whiskmesh.namespace=%s" % namespace, "--format", "{{.Name}}")
        return names.split()[0] if names else None

    def redeploy(self, storage, fetch_wait):
        """The broker with this storage, every consumer with this fetch-wait floor; controller and
        invokers restarted (a memory broker starts empty)."""
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(wb.ROOT, "ansible", "ansible.cfg"))
        run = subprocess.run([os.path.join(wb.ROOT, ".venv", "bin", "ansible-playbook"), "-i", self.inventory,
                              os.path.join(wb.ROOT, "ansible", "site.yml"), *self.extra,
                              "-e", "whiskmesh_broker_storage=%s" % storage, "-e", "whiskmesh_kafka_min_fetch_wait_ms=%d" % fetch_wait],
                             env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError("playbook failed:\n" + run.stdout[-3000:])
        self.host(0, "docker", "restart", "whiskmesh-controller")
        for invoker in self.hosts:
            self.host(invoker, "docker", "restart", "whiskmesh-invoker%d" % invoker)
        self.wait_invokers(timeout=180)


# -- 1. message passing -----------------------------------------------------------------------------

def exchange(cluster, pair, transports, points, redis_address):
    """One pair of activations running `points` over every transport of `transports`, interleaved
    trial by trial; returns role a's result ({"results": {transport: points}, "placement"})."""
    a, b = pair
    key = "xbench-%d" % time.monotonic_ns()
    common = {"transports": transports, "plan": points, "redis": redis_address, "key": key}
    status_b, body_b = cluster.invoke(b, dict(common, role="b", peer="xa-" + a), blocking=False, instance="xb-" + b)
    status_a, body_a = cluster.invoke(a, dict(common, role="a", peer="xb-" + b), blocking=False, instance="xa-" + a)
    if status_a != 202 or status_b != 202:
        raise RuntimeError("invoke failed: %s %s / %s %s" % (status_a, body_a, status_b, body_b))
    records = [cluster.wait_activation(body_a["activationId"]), cluster.wait_activation(body_b["activationId"])]
    for record in records:
        if not record["response"]["success"] or "error" in record["response"]["result"]:
            raise RuntimeError("%s exchange failed: %s" % (transports, record["response"]["result"]))
    return records[0]["response"]["result"]


def message_passing(cluster):
    code = wb.action_code("messaging.py")
    pairs = {"same host": (named_for(0, "xs-a"), named_for(0, "xs-b")), "two hosts": (named_for(0, "xc-a"), named_for(1, "xc-b"))}
    for a, b in pairs.values():
        cluster.put_action(a, code, memory=1024)
        cluster.put_action(b, code, memory=1024)
    placements = {}
    for label, pair in pairs.items():
        result = exchange(cluster, pair, ["sdk"], [{"kind": "count", "n": 10, "trials": 1}], None)
        placements[label] = result["placement"]
        invokers = set(result["placement"].values())
        if len(invokers) != (1 if label == "same host" else 2):
            raise RuntimeError("the %s pair ran on invokers %s" % (label, result["placement"]))
    wb.log("placements: %s" % placements)
    # Redis on the third host, attached to the namespace's overlay like the actions.
    image = subprocess.run(["docker", "save", REDIS_IMAGE], capture_output=True, check=True).stdout
    cluster.host(2, "docker", "load", stdin=image)
    network = cluster.overlay()
    cluster.host(2, "docker", "run", "-d", "--name", "wmbench-redis", "--label", "%s=%s" % (wb.LABEL, cluster.run), "--network", network,
                 REDIS_IMAGE, "redis-server", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no")
    redis_ip = cluster.host(2, "docker", "inspect", "--format", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network, "wmbench-redis")
    runs = []
    for index in range(1, RUNS + 1):
        results = {}
        for label, pair in pairs.items():
            wb.log("messaging run %d: %s interleaved, %s" % (index, ", ".join(TRANSPORTS), label))
            measured = exchange(cluster, pair, TRANSPORTS, PLAN, "%s:6379" % redis_ip)["results"]
            for transport in TRANSPORTS:
                results["%s|%s" % (transport, label)] = measured[transport]
        runs.append(results)
    return {"placements": placements, "runs": runs, "redis": "on %s (a third host)" % cluster.hosts[2]}


# -- 2. propagation ---------------------------------------------------------------------------------

def propagation(cluster):
    """Benchmark 3's measurement (bench/propagation.py) with watchers on host 1 and host 2 and the
    probe on host 1."""
    watch = wb.action_code("watch.py")
    watchers = [named_for(0, "xw"), named_for(1, "xw")]
    for name in watchers:
        cluster.put_action(name, watch, timeout=300_000)
    names = {"same": "same host", "other": "two hosts"}
    runs = []
    for index in range(1, RUNS + 1):
        wb.log("propagation run %d" % index)
        probes, results = propagation_bench.measure(cluster, watchers, named_for(0, "xp"), PROBES)
        series, _, missing = propagation_bench.classify(probes, results)
        runs.append({"series": {"%s|%s" % (key.split("-")[0], names[key.split("-")[1]]): values for key, values in series.items()},
                     "missing": missing, "probes": len(probes)})
    return {"runs": runs}


# -- 3. the durable broker's cost -------------------------------------------------------------------

def broker_cost(cluster):
    action = named_for(0, "xn")
    samples = {"%s|%d" % b: [] for b in BROKERS}
    for round_ in range(ROUNDS):
        for storage, wait in BROKERS:
            wb.log("broker round %d: %s storage, %d ms fetch-wait floor" % (round_ + 1, storage, wait))
            cluster.redeploy(storage, wait)
            cluster.put_action(action, NOOP, timeout=10_000)
            for _ in range(20):
                cluster.invoke(action)
            for _ in range(INVOKES // ROUNDS):
                started = time.perf_counter()
                status, record = cluster.invoke(action)
                elapsed = time.perf_counter() - started
                if status != 200 or not record["response"]["success"]:
                    raise RuntimeError("invoke failed: %s %s" % (status, record))
                samples["%s|%d" % (storage, wait)].append(elapsed)
    cluster.redeploy("s3", 100)
    return samples


def main():
    with Cluster() as cluster:
        data = {"messaging": message_passing(cluster)}
        data["propagation"] = propagation(cluster)
        data["broker"] = broker_cost(cluster)
    report(data)


def report(data):
    path = wb.save("cluster", data)
    info = json.load(open(path))["machine"]
    md = ["Machine: %s. Three Docker hosts on this machine, each a container with its own dockerd and address, "
          "joined in one swarm (`scripts/cluster up 3`); VXLAN between them goes through this machine's kernel, so "
          "\"two hosts\" here measures the overlay's encapsulation and the extra network namespaces, not a physical "
          "link. Raw data: `docs/benchmarks/cluster.json`." % wb.machine_line(info), ""]
    messaging_runs = data["messaging"]["runs"]
    md += ["**Message passing** (placements %s; Redis %s). SDK, raw TCP and Redis interleaved trial by trial; p50 / p95 per run; "
           "the ratios are medians of per-trial ratios (spread in brackets):" % (data["messaging"]["placements"], data["messaging"]["redis"]), ""]
    rows, notes = [], []
    for index, point in enumerate(PLAN):
        label = ("%d × 64 B round trips" % point["n"]) if point["kind"] == "count" else wb.fmt_bytes(point["bytes"])
        medians = []
        for run_index, results in enumerate(messaging_runs, 1):
            row = ["%s (run %d)" % (label, run_index)]
            for transport in TRANSPORTS:
                for where in ("same host", "two hosts"):
                    s = wb.summary(results["%s|%s" % (transport, where)][index]["seconds"])
                    row.append("%s / %s" % (wb.fmt_seconds(s["p50"]), wb.fmt_seconds(s["p95"])))
            sdk_same = results["sdk|same host"][index]["seconds"]
            sdk_two = results["sdk|two hosts"][index]["seconds"]
            redis_two = results["redis|two hosts"][index]["seconds"]
            across = wb.summary(sdk_two)["p50"] / wb.summary(sdk_same)["p50"]
            versus = wb.ratio(redis_two, sdk_two)
            medians.append((across, versus["median"] if versus else None))
            row += [wb.fmt_ratio(across), wb.fmt_ratio_spread(versus)]
            rows.append(row)
        if len(medians) == 2:
            for position, what in ((0, "SDK two hosts / same"), (1, "Redis / SDK two hosts")):
                if wb.disagree(medians[0][position], medians[1][position]):
                    notes.append("%s %s: %s vs %s" % (label, what, wb.fmt_ratio(medians[0][position]), wb.fmt_ratio(medians[1][position])))
    header = [""] + ["%s, %s" % (t if t != "redis" else "Redis BLPOP", w) for t in TRANSPORTS for w in ("same host", "two hosts")] + \
             ["SDK two hosts / same (p50)", "Redis / SDK, two hosts"]
    md += [wb.table(header, rows), ""]
    prop_runs = data["propagation"]["runs"]
    md += ["**Address-map propagation**: %d probes on host 1 per run, watchers on host 1 and host 2 (never seen: %s)." %
           (prop_runs[0]["probes"], " and ".join(str(r["missing"]) for r in prop_runs)), ""]
    rows = []
    for key in prop_runs[0]["series"]:
        figures = []
        for run_index, prop in enumerate(prop_runs, 1):
            s = wb.summary(prop["series"][key])
            figures.append(s)
            what, where = key.split("|")
            rows.append(["%s, watcher on %s (run %d)" % (what, "the probe's host" if where == "same host" else "another host", run_index), s["n"],
                         wb.fmt_seconds(s.get("p50")), wb.fmt_seconds(s.get("p99")), wb.fmt_seconds(s.get("max"))])
        if len(figures) == 2 and wb.disagree(figures[0].get("p50"), figures[1].get("p50")):
            notes.append("propagation %s p50: %s vs %s" % (key, wb.fmt_seconds(figures[0].get("p50")), wb.fmt_seconds(figures[1].get("p50"))))
    md += [wb.table(["", "samples", "p50", "p99", "max"], rows), "",
           "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"), ""]
    md += ["**What the durable broker costs**: %d warm blocking invokes of a no-op action per configuration, from the "
           "client, in %d interleaved rounds (each round redeploys the broker and restarts controller and invokers)." %
           (INVOKES, ROUNDS), ""]
    rows = []
    base = wb.summary(data["broker"]["memory|0"])
    for key, values in data["broker"].items():
        storage, wait = key.split("|")
        s = wb.summary(values)
        rows.append(["Tansu, %s storage, fetch-wait floor %s ms" % ("S3 (SeaweedFS)" if storage == "s3" else "memory", wait), s["n"],
                     wb.fmt_seconds(s["p50"]), wb.fmt_seconds(s["p99"]), wb.fmt_ratio(s["p50"] / base["p50"])])
    md += [wb.table(["broker", "invokes", "p50", "p99", "p50 / memory"], rows)]
    wb.update_doc("cluster", "\n".join(md))


if __name__ == "__main__":
    wb.run_benchmark(main)
