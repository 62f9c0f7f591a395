"""Benchmark 4, directory scale: simulated invokers (processes speaking the real heartbeat protocol:
pings on `health` with the `addressMap` field, answering snapshot requests from `addressmap`) feed
the real controller over the real broker with 100, 1,000 and 10,000 live instances, then churn
(one instance replaced per update) while an observer reads the `addressmap` topic. Reported per
scale: controller CPU and memory, Kafka bytes per change on both topics, the bytes of the periodic
snapshots, and the controller's propagation latency (ping sent → delta on `addressmap`). Every
scale runs twice (run 1 at each scale, then run 2); docs/benchmarks.md shows both runs and marks
where they disagree by more than 25 %.

    scripts/bench directory
"""
import json
import multiprocessing as mp
import os
import queue
import random
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

SIMULATED_INVOKERS = 10
SCALES = [int(s) for s in os.environ.get("WHISK_BENCH_SCALES", "100,1000,10000").split(",")]
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
CHURN_PER_SECOND = 10  # per simulated invoker: 100 updates/s in all
CHURN_SECONDS = 20
NAMESPACE = "guest"
MESSAGE_MAX = 16 << 20


def kafka_config(brokers, **extra):
    config = {"bootstrap.servers": brokers, "message.max.bytes": MESSAGE_MAX}
    if "group.id" in extra:
        config.update({"fetch.wait.max.ms": 10, "fetch.message.max.bytes": MESSAGE_MAX, "fetch.max.bytes": MESSAGE_MAX,
                       "receive.message.max.bytes": MESSAGE_MAX + 65536})
    return dict(config, **extra)


def assign_from_end(consumer, *topics):
    """Reads every partition of `topics` from its end, without a group (waits for the topics)."""
    from confluent_kafka import OFFSET_END, TopicPartition
    partitions = []
    for topic in topics:
        deadline = time.time() + 30
        while True:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is not None and metadata.error is None and metadata.partitions:
                partitions += [TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions]
                break
            if time.time() > deadline:
                raise RuntimeError("topic %s not found" % topic)
            time.sleep(0.2)
    consumer.assign(partitions)


def simulated_invoker(index, brokers, prefix, commands, reports, user_memory="2147483648 B", churn_per_second=CHURN_PER_SECOND):
    """One invoker's heartbeat: a ping a second, at once on a change; snapshots when asked. With
    `user_memory` "0 B" the controller never gives it an activation (beside real invokers)."""
    from confluent_kafka import Consumer, Producer
    producer = Producer(kafka_config(brokers, **{"linger.ms": 0}))
    # Snapshot requests are rare and need no haste: a long fetch wait keeps ten consumers from
    # polling the broker every 10 ms.
    consumer = Consumer(kafka_config(brokers, **{"group.id": "%ssim%d" % (prefix, index), "enable.auto.commit": False,
                                                 "fetch.wait.max.ms": 500}))
    assign_from_end(consumer, prefix + "addressmap")
    name = {"instance": index, "userMemory": user_memory, "instanceType": "invoker", "tags": [],
            "dedicatedNamespaces": [], "uniqueName": str(index), "displayedName": "sim%d" % index}
    incarnation, seq = secrets.token_hex(8), 0
    entries, counter = {}, 0
    target, churn, snapshot_due = 0, False, True
    last_ping, next_churn = 0.0, 0.0
    sent = []  # (instance id, send time) of every churned-in entry

    def entry():
        nonlocal counter
        counter += 1
        ident = "s%d-%d" % (index, counter)
        return {"namespace": NAMESPACE, "instanceID": ident, "ip": "10.%d.%d.%d" % (200 + index % 50, (counter >> 8) & 255, counter & 255),
                "invoker": index, "activationId": secrets.token_hex(16), "since": int(time.time() * 1000)}

    def ping(update):
        nonlocal last_ping
        message = {"name": name, "isEnabled": True}
        if update is not None:
            message["addressMap"] = update
        producer.produce(prefix + "health", json.dumps(message).encode())
        producer.poll(0)
        last_ping = time.time()

    while True:
        try:
            command = commands.get_nowait()
            if command[0] == "target":
                target = command[1]
            elif command[0] == "churn":
                churn = command[1]
                if not churn:
                    reports.put((index, sent))
                    sent = []
            elif command[0] == "stop":
                break
        except queue.Empty:
            pass
        message = consumer.poll(0)
        if message is not None and message.error() is None:
            publication = json.loads(message.value())
            if publication.get("type") == "snapshotRequest" and publication.get("invoker") == index:
                snapshot_due = True
        now = time.time()
        update = None
        if snapshot_due:
            while len(entries) < target:
                e = entry()
                entries[e["instanceID"]] = e
            seq += 1
            update = {"incarnation": incarnation, "seq": seq, "snapshot": True, "added": list(entries.values()), "removed": []}
            snapshot_due = False
        elif len(entries) != target:
            added, removed = [], []
            while len(entries) < target and len(added) < 500:
                e = entry()
                entries[e["instanceID"]] = e
                added.append(e)
            while len(entries) > target and len(removed) < 500:
                ident, e = entries.popitem()
                removed.append({"namespace": NAMESPACE, "instanceID": ident})
            seq += 1
            update = {"incarnation": incarnation, "seq": seq, "snapshot": False, "added": added, "removed": removed}
        elif churn and now >= next_churn:
            next_churn = max(now, next_churn) + 1.0 / churn_per_second
            old = random.choice(list(entries))
            del entries[old]
            e = entry()
            entries[e["instanceID"]] = e
            seq += 1
            update = {"incarnation": incarnation, "seq": seq, "snapshot": False, "added": [e],
                      "removed": [{"namespace": NAMESPACE, "instanceID": old}]}
            sent.append((e["instanceID"], time.time()))
        if update is not None or now - last_ping >= 1.0:
            ping(update)
        else:
            time.sleep(0.001)
    producer.flush(5)
    consumer.close()


class Observer(threading.Thread):
    """Reads `addressmap` and `health` from their ends: sizes, kinds, and when each entry first shows."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer
        self.consumer = Consumer(kafka_config(stack.brokers, **{"group.id": stack.prefix + "observer", "enable.auto.commit": False}))
        self.topics = (stack.prefix + "addressmap", stack.prefix + "health")
        assign_from_end(self.consumer, *self.topics)
        self.lock = threading.Lock()
        self.events = []  # (time, topic kind, bytes, publication type, added ids)
        self.running = True

    def run(self):
        while self.running:
            message = self.consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            now = time.time()
            value = message.value()
            if message.topic() == self.topics[0]:
                publication = json.loads(value)
                kind = publication.get("type")
                added = [e["instanceID"] for e in publication.get("added", [])] if kind == "delta" else []
                event = (now, "addressmap", len(value), kind, added)
            else:
                ping = json.loads(value)
                update = ping.get("addressMap")
                event = (now, "health", len(value), "update" if update else "ping", [])
            with self.lock:
                self.events.append(event)

    def saw_all(self, sent):
        with self.lock:
            seen = {i for e in self.events for i in e[4]}
        return all(i in seen for i in sent)

    def window(self, start, end):
        with self.lock:
            return [e for e in self.events if start <= e[0] < end]

    def stop(self):
        self.running = False
        self.join(5)
        self.consumer.close()


def wait_for_size(stack, size, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        count = len(stack.get("/namespaces/_/addressmap").get("instances", []))
        if count == size:
            return
        time.sleep(0.5)
    raise RuntimeError("the controller's map did not reach %d instances (has %d)" % (size, count))


def main():
    results = []
    for index in range(1, RUNS + 1):
        for scale in SCALES:
            result = run_scale(scale)
            result["run"] = index
            results.append(result)
    report(results)


def run_scale(scale):
    """One scale on a fresh platform: Tansu's in-memory log only holds this scale's traffic."""
    context = mp.get_context("spawn")
    with wb.Stack("directory%d" % scale, invokers=0) as stack:
        observer = Observer(stack)
        observer.start()
        commands = [context.Queue() for _ in range(SIMULATED_INVOKERS)]
        reports = context.Queue()
        sims = [context.Process(target=simulated_invoker, args=(i, stack.brokers, stack.prefix, commands[i], reports), daemon=True)
                for i in range(SIMULATED_INVOKERS)]
        for sim in sims:
            sim.start()
        try:
            controller = wb.ProcessSampler(stack.pid("controller"))
            broker = wb.ProcessSampler(stack.pid("broker"))
            simulators = [wb.ProcessSampler(sim.pid) for sim in sims]
            for q in commands:
                q.put(("target", scale // SIMULATED_INVOKERS))
            wait_for_size(stack, scale)
            time.sleep(3)
            wb.log("%d instances: churning for %d s" % (scale, CHURN_SECONDS))
            cpu_before, started = controller.cpu(), time.time()
            broker_before, sims_before = broker.cpu(), sum(p.cpu() for p in simulators)
            for q in commands:
                q.put(("churn", True))
            time.sleep(CHURN_SECONDS)
            for q in commands:
                q.put(("churn", False))
            ended = time.time()
            cpu = controller.cpu() - cpu_before
            others = {"brokerCpuPercent": round((broker.cpu() - broker_before) / (ended - started) * 100, 1),
                      "simulatorsCpuPercent": round((sum(p.cpu() for p in simulators) - sims_before) / (ended - started) * 100, 1)}
            sent = {}
            for _ in sims:
                index, items = reports.get(timeout=30)
                sent.update(dict(items))
            # Until every churned-in entry was published (or 15 s).
            deadline = time.time() + 15
            while time.time() < deadline and not observer.saw_all(sent):
                time.sleep(0.2)
            result = measure(scale, observer, sent, started, ended, cpu / (ended - started), controller.rss_mib())
            result["summary"].update(others)
            wb.log("  %s" % json.dumps(result["summary"]))
            return result
        finally:
            stop_simulators(commands, sims)
            observer.stop()


def stop_simulators(commands, sims):
    """Tells every simulated invoker to stop, and kills one that does not within 10 s."""
    for q in commands:
        q.put(("stop",))
    for sim in sims:
        sim.join(10)
        if sim.is_alive():
            sim.kill()


def measure(scale, observer, sent, started, ended, cpu_share, rss):
    events = observer.window(started, ended + 15)
    seen = {}
    for t, topic, size, kind, added in events:
        for ident in added:
            seen.setdefault(ident, t)
    latencies = [seen[i] - t for i, t in sent.items() if i in seen]
    missing = sorted(i for i in sent if i not in seen)
    in_window = [e for e in events if e[0] < ended]
    deltas = [e for e in in_window if e[1] == "addressmap" and e[3] == "delta"]
    snapshots = [e for e in in_window if e[1] == "addressmap" and e[3] in ("snapshot", "snapshotPart")]
    updates = [e for e in in_window if e[1] == "health" and e[3] == "update"]
    seconds = ended - started
    summary = {
        "instances": scale, "changes": len(sent), "propagated": len(latencies),
        "controllerCpuPercent": round(cpu_share * 100, 1), "controllerRssMiB": round(rss, 1),
        "deltaBytesPerChange": round(sum(e[2] for e in deltas) / max(1, len(sent)), 1),
        "pingBytesPerChange": round(sum(e[2] for e in updates) / max(1, len(sent)), 1),
        "snapshotBytesPerSecond": round(sum(e[2] for e in snapshots) / seconds),
        "largestSnapshotBytes": max((e[2] for e in snapshots), default=0),
        "snapshotRequests": sum(1 for e in in_window if e[1] == "addressmap" and e[3] == "snapshotRequest"),
        "propagation": wb.summary(latencies),
    }
    return {"summary": summary, "latencies": latencies, "missing": missing[:50]}


COMPARED = (("controllerCpuPercent", "controller CPU %"), ("deltaBytesPerChange", "delta bytes / change"),
            ("pingBytesPerChange", "ping bytes / change"), ("snapshotBytesPerSecond", "snapshot bytes / s"))


def report(results):
    rows, table, notes = [], [], []
    results = sorted(results, key=lambda r: (r["summary"]["instances"], r.get("run", 1)))
    for scale in SCALES:
        pair = [r["summary"] for r in results if r["summary"]["instances"] == scale]
        if len(pair) == 2:
            for key, label in COMPARED:
                if wb.disagree(pair[0][key], pair[1][key]):
                    notes.append("%s at %s: %s vs %s" % (label, "{:,}".format(scale), pair[0][key], pair[1][key]))
            for p in ("p50", "p99"):
                a, b = pair[0]["propagation"].get(p), pair[1]["propagation"].get(p)
                if wb.disagree(a, b):
                    notes.append("propagation %s at %s: %s vs %s" % (p, "{:,}".format(scale), wb.fmt_seconds(a), wb.fmt_seconds(b)))
    for r in results:
        s = r["summary"]
        p = s["propagation"]
        rows.append([r.get("run", 1), s["instances"], s["changes"], s["propagated"], s["controllerCpuPercent"], s["controllerRssMiB"],
                     s["pingBytesPerChange"], s["deltaBytesPerChange"], s["snapshotBytesPerSecond"], s["largestSnapshotBytes"],
                     p.get("p50"), p.get("p99")])
        table.append(["{:,} (run %d)".format(s["instances"]) % r.get("run", 1), "%d / %d" % (s["propagated"], s["changes"]), "%.1f %%" % s["controllerCpuPercent"],
                      "%.0f MiB" % s["controllerRssMiB"], "%.0f %%" % s["brokerCpuPercent"], "%.0f B" % s["pingBytesPerChange"], "%.0f B" % s["deltaBytesPerChange"],
                      "{:,} B/s".format(s["snapshotBytesPerSecond"]), wb.fmt_seconds(p.get("p50")), wb.fmt_seconds(p.get("p99"))])
    wb.write_csv("directory", ["run", "instances", "changes", "propagated", "controller_cpu_percent", "controller_rss_mib",
                               "ping_bytes_per_change", "delta_bytes_per_change", "snapshot_bytes_per_second",
                               "largest_snapshot_bytes", "propagation_p50_s", "propagation_p99_s"], rows)
    path = wb.save("directory", {"results": results})
    info = json.load(open(path))["machine"]
    text = ["Machine: %s. %d simulated invokers (separate processes, confluent-kafka) hold the instances of one namespace and "
            "replace %d instances per second each (%d updates/s in all) for %d s per scale, each scale on a fresh platform; a change is one update with one "
            "entry added and one removed. Propagation: the ping's send → the delta on `addressmap` (the controller's part; "
            "benchmark 3 has the whole path to the files). Raw data: `docs/benchmarks/directory.json`, `directory.csv`; plot "
            "`directory.png`." % (wb.machine_line(info), SIMULATED_INVOKERS, CHURN_PER_SECOND, SIMULATED_INVOKERS * CHURN_PER_SECOND, CHURN_SECONDS),
            "", wb.table(["instances", "propagated", "controller CPU", "controller RSS", "broker CPU", "ping bytes / change", "delta bytes / change",
                          "snapshot traffic", "propagation p50", "propagation p99"], table),
            "", "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"),
            "", "![directory](benchmarks/directory.png)"]
    wb.update_doc("directory", "\n".join(text))
    plt = wb.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    results = [r for r in results if r.get("run", 1) == 1]  # the plot shows run 1
    scales = [r["summary"]["instances"] for r in results]
    axes[0].plot(scales, [r["summary"]["deltaBytesPerChange"] for r in results], "o-", label="delta bytes / change")
    axes[0].plot(scales, [r["summary"]["pingBytesPerChange"] for r in results], "s-", label="ping bytes / change")
    axes[0].plot(scales, [r["summary"]["snapshotBytesPerSecond"] for r in results], "^--", label="snapshot bytes / s")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("live instances")
    axes[0].legend()
    axes[0].grid(True, alpha=0.3)
    axes[1].plot(scales, [r["summary"]["propagation"].get("p50", 0) * 1000 for r in results], "o-", label="p50")
    axes[1].plot(scales, [r["summary"]["propagation"].get("p99", 0) * 1000 for r in results], "s-", label="p99")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("live instances")
    axes[1].set_ylabel("ms (ping → delta)")
    axes[1].legend()
    axes[1].grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(os.path.join(wb.RESULTS, "directory.png"), dpi=110)


if __name__ == "__main__":
    wb.run_benchmark(main)
