"""Probes behind benchmark 10's prose (docs/benchmarks.md §10), kept so their numbers can be
measured again. Not part of `scripts/bench`: they answer one question each and write nothing.

    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py brokergrowth   # ~4 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py stemcold       # ~3 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py burst          # ~8 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py firstpass      # ~2 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py ipreuse        # ~2 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py kafkahop       # ~1 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py fetchwait      # ~5 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py cpusplit       # ~1 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py hops           # ~2 min, needs tcpdump
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py stemload       # ~10 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py bigmap         # ~4 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py idle           # ~2 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py attaches       # ~1 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py settle         # ~4 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py topics         # ~1 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py history        # ~4 min

- brokergrowth: one platform kept running; per step, 50 invokes at one client (p50) and Tansu's
  idle CPU over 5 s, then 3,200 invokes at 16 clients. Shows the memory engine slowing as its
  partitions fill.
- stemcold: single cold starts of fresh actions with the invoker's default stem cells
  (`--prewarm 1`), overlay off and on interleaved, each trial on a fresh platform; STEMCOLD_GAP
  seconds apart (default 4); which of them found no stem cell, and on which invoker.
- burst: benchmark 10's first and steady pass of the no-op (overlay on, `--prewarm 0`) at 4, 16
  and 64 clients, with the invoker letting activations wait for a busy container of their action
  (the default) and without (`--no-wait-for-busy-containers`: a cold start each), interleaved,
  each trial on a fresh platform; and how many cold starts each pass had.
- firstpass: benchmark 10's first pass at 16 clients, overlay off and on: each cold start's
  latency split into `waitTime` and `initTime`, and the slowest latencies.
- ipreuse: single cold starts with the invokers restarted in between (benchmark 2 at one client),
  overlay off and on in turn: each container's `/init` time and address on the action network.
- kafkahop: the floor of an activation's two Kafka hops (controller → invoker, ack back): one
  message echoed through a fresh Tansu broker by a second consumer, 1,000 round trips with
  librdkafka set as the platform sets it (no linger, `fetch.wait.max.ms` 10), then 2 and 1 ms.
- fetchwait: the no-op at 1 client (200 invokes) and 16 clients (2 passes of 25 each), overlay
  on, with the fetch waits of the activation path's consumers (`--kafka-fetch-wait`) and of the
  control plane's (`--kafka-control-fetch-wait`: heartbeats, address maps) in FETCH_WAITS,
  interleaved, each trial on a fresh platform; and the broker's CPU while idle for 5 s.
- cpusplit: one platform (overlay on), the no-op warmed up, then 16 clients × 100 invokes: CPU
  per activation of the broker, the controller, each invoker, dockerd and the action containers
  (their cgroup), the threads' context switches per activation, and one client's p50 after. Run
  it with WHISK_BIN_DIR pointing at two builds in turn to compare them (interleave: on this
  machine the first platform of a pair tends to be the faster one). CPUSPLIT_INSTANCES=1 gives
  every invoke an instance ID of its own; CPUSPLIT_OVERLAY=off runs the invokers `--no-overlay`;
  CPUSPLIT_ACTION=cpu runs benchmark 2's CPU-bound action (20 invokes per client) instead of the no-op;
  CPUSPLIT_INVOKER_FLAGS adds flags to the invokers'; FIRSTPASS_INVOKER_FLAGS to firstpass's,
  and FIRSTPASS_WARMUP=1 runs another action once before its burst (the namespace active).
- hops: where one client's warm no-op latency goes, read off the wire so no process is slowed:
  tcpdump on loopback (REST, Kafka) and on the action bridge (`/run`) while one client invokes
  HOPS_INVOKES times (300), overlay off and on interleaved, HOPS_TRIALS (2) each on a fresh
  platform (scripts/run's setting: `--prewarm 1`); HOPS_FETCH_WAITS (ms, "3") the activation
  path's fetch waits to compare (`--kafka-fetch-wait`), HOPS_OVERLAY ("off,on") the modes, HOPS_BIN_DIRS builds to compare (WHISK_BIN_DIR). Also the
  broker's idle CPU and, after the single client, 16 clients' rate and the broker's CPU per activation. Each invoke's packets are matched to the
  processes by their sockets (`ss -p`) and to Kafka requests by correlation id; printed: the p50
  of each step (the controller's HTTP request → its Produce → the invoker's Fetch answer with the
  activation → `/run` → its answer → the ack's Produce → the controller's Fetch answer with it →
  the HTTP answer).
- stemload: benchmark 10's no-op level at STEMLOAD_CLIENTS (64) clients in `scripts/run`'s setting (overlay on,
  `--prewarm 1`, the namespace active), with the namespace's stem cells sized to its bursts (up
  to `--prewarm-burst-limit` 8, the default) and not (1), interleaved, two trials each: the steady
  pass's rate and p99, how many containers the invokers made during it and STEMLOAD_SETTLE (5) s
  after it. STEMLOAD_LIMITS ("8,1") the limits, STEMLOAD_BIN_DIRS builds to compare, STEMLOAD_TRIALS (2).
- bigmap: a warm no-op's latency (1 client) and rate (16 clients) while the namespace's map holds
  10,000 instances (simulated invokers, benchmark 4's) of which 100 change a second, so every real
  invoker rewrites a ~1.5 MB map.json per delta; the real invokers' CPU. BIGMAP_BIN_DIRS builds to
  compare, BIGMAP_TRIALS (2), BIGMAP_INSTANCES, BIGMAP_CHURN.
- idle: each process's CPU over 20 s with the platform idle (a warm no-op invoked 10 times, then
  3 s of rest), overlay off and on interleaved, two trials each: what the overlay costs when
  nothing changes.
- attaches: how Docker handles overlay attaches at once: ATTACHES ("1,4,16") containers on the
  default bridge connected together (`docker network connect`, the CLI) to an attachable overlay
  that an anchor container keeps live on the host, twice each; the wall time of each batch and
  its attaches' p50 and max.
- settle: one client's steady pass (200 invokes of the no-op) in `scripts/run`'s setting, right
  after the level's first pass (as benchmark 10) and SETTLE_GAP (3) s later, overlay off and on
  interleaved, SETTLE_TRIALS (2) each on a fresh platform; and the containers counted before and
  after it.
- topics: how many messages each of the platform's topics gets in 10 s idle and during 200
  invokes of a warm no-op at one client (`scripts/run`'s setting, no instance IDs), overlay off
  and on.
- history: what a Kafka hop costs on a fresh Tansu broker as one partition fills: HISTORY_HOPS
  (150) messages produced and consumed one at a time (librdkafka, `fetch.wait.max.ms` 3, as the
  activation path) with the partition holding 0, 20,000, 40,000 and 60,000 messages of 400 B;
  the hop's p50 / p90 and the broker's CPU per hop; then the same on a partition of one message
  beside it (is it the partition's history or the broker's?), and whether a topic created with
  `retention.ms` 2000 and filled alike loses anything in 8 s (its low watermark).
"""
import glob
from concurrent.futures import ThreadPoolExecutor
import http.client
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead  # noqa: E402
import platformcost as pc  # noqa: E402
import whiskbench as wb  # noqa: E402

NOOP = {"exec": {"kind": "python:3", "code": pc.ACTIONS["noop"]}, "limits": {"memory": 128}}


def brokergrowth(steps=5):
    with wb.Stack("brokergrowth", user_memory="10240 MB") as stack:
        stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
        broker = wb.ProcessSampler(stack.pid("broker"))
        total = 0
        for _ in range(steps):
            one = pc.summarize(*pc.closed_loop(stack, "noop", 1, 50))
            before = broker.cpu()
            time.sleep(5)
            idle = (broker.cpu() - before) / 5 * 100
            print("after %5d activations: 1 client p50 %s; broker idle CPU %.0f%%" % (total, wb.fmt_seconds(one["p50"]), idle), flush=True)
            many = pc.summarize(*pc.closed_loop(stack, "noop", 16, 200))
            total += many["n"] + one["n"]
            print("    16 clients: %.0f/s, p50 %s" % (many["throughput"], wb.fmt_seconds(many["p50"])), flush=True)


def stemcold(trials=2, per_trial=8):
    """STEMCOLD_GAP (s, default 4) between the cold starts; also counts those that found no stem
    cell (the container was made for the action), by invoker."""
    gap = float(os.environ.get("STEMCOLD_GAP", "4"))
    where = {"exec": {"kind": "python:3", "code": "import socket\ndef main(args):\n    return {'host': socket.gethostname()}\n"},
             "limits": {"memory": 128}}
    results = {"off": [], "on": []}
    missed = {"off": [], "on": []}
    for _ in range(trials):
        for mode in ("off", "on"):
            with wb.Stack("stemcold", invoker_args=pc.MODES[mode] + ["--prewarm", "1"], user_memory="10240 MB") as stack:
                stack.request("PUT", "/namespaces/_/actions/warmup?overwrite=true", where)
                pc.closed_loop(stack, "warmup", 1, 2)  # the namespace is now recently active
                for i in range(per_trial):
                    time.sleep(gap)  # time for the pool to replace the stem cell it gave away
                    stack.request("PUT", "/namespaces/_/actions/cold%d?overwrite=true" % i, where)
                    began = time.perf_counter()
                    status, record = stack.request("POST", "/namespaces/_/actions/cold%d?blocking=true" % i, {})
                    latency = time.perf_counter() - began
                    results[mode].append(latency)
                    host = record.get("response", {}).get("result", {}).get("host") if status == 200 else None
                    name = subprocess.run(["docker", "inspect", "-f", "{{.Name}}", host or "-"], capture_output=True, text=True).stdout.strip()
                    if "_prewarm" not in name:  # a namespace's stem cell ends so, a kind's has `_prewarm_<kind>`
                        missed[mode].append("%s (%s)" % (name.split("_")[0].lstrip("/") or "status %d" % status, wb.fmt_seconds(latency)))
    for mode, latencies in results.items():
        print("overlay %s, %.0f s apart: %d cold starts, p50 %s, p90 %s; %d found no stem cell: %s" % (
            mode, gap, len(latencies), wb.fmt_seconds(wb.percentile(latencies, 50)), wb.fmt_seconds(wb.percentile(latencies, 90)),
            len(missed[mode]), ", ".join(missed[mode]) or "-"))


def burst(trials=2, levels=(4, 16, 64)):
    modes = {"wait": [], "no wait": ["--no-wait-for-busy-containers"]}
    for c in levels:
        def trial(mode, number):
            with wb.Stack("burst", invoker_args=modes[mode], user_memory="10240 MB") as stack:
                name = "burst-%s-%d-%d" % (mode.replace(" ", ""), c, number)
                stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name, NOOP)
                first = pc.summarize(*pc.closed_loop(stack, name, c, pc.PER_LEVEL))
                steady = pc.summarize(*pc.closed_loop(stack, name, c, pc.PER_LEVEL))
            line = "c=%d %s: first %.0f/s p50 %s p99 %s (%d cold); steady %.0f/s p50 %s p99 %s (%d cold)%s" % (
                c, mode, first["throughput"] or 0, wb.fmt_seconds(first["p50"]), wb.fmt_seconds(first["p99"]), first["cold"],
                steady["throughput"] or 0, wb.fmt_seconds(steady["p50"]), wb.fmt_seconds(steady["p99"]), steady["cold"],
                " (%d failed)" % (first["failures"] + steady["failures"]) if first["failures"] + steady["failures"] else "")
            print(line, flush=True)
            return {"first": first, "steady": steady}
        wb.interleave(list(modes), trials, trial)


def firstpass(trials=2, clients=16):
    """Benchmark 10's first pass at 16 clients (no-op, `--prewarm 0`), overlay off and on
    interleaved, each trial on a fresh platform: its cold starts' latency, `waitTime` (accepted →
    container started) and `initTime` (`/init`, and the overlay attach beside it), and the slowest
    latencies, to tell which containers the p99 waits for."""
    for number in range(trials):
        for mode in ("off", "on"):
            flags = pc.MODES[mode] + os.environ.get("FIRSTPASS_INVOKER_FLAGS", "").split()
            with wb.Stack("firstpass", invoker_args=flags, user_memory="10240 MB") as stack:
                name = "first-%s-%d" % (mode, number)
                stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name, NOOP)
                if os.environ.get("FIRSTPASS_WARMUP"):
                    pc.activate_namespace(stack, "warmup")  # the namespace already active on the host
                wall, samples = pc.closed_loop(stack, name, clients, pc.PER_LEVEL)
            summary = pc.summarize(wall, samples)
            cold = sorted((s for s in samples if s.get("init")), key=lambda s: s["latency"])
            slowest = sorted(s["latency"] for s in samples)[-8:]
            print("overlay %s: %.0f/s, p99 %s; cold starts (latency = wait + init ms): %s; slowest: %s" % (
                mode, summary["throughput"] or 0, wb.fmt_seconds(summary["p99"]),
                ", ".join("%s = %s + %s" % (wb.fmt_seconds(s["latency"]), s["wait"], s["init"]) for s in cold),
                ", ".join(wb.fmt_seconds(v) for v in slowest)), flush=True)


def ipreuse(rounds=8):
    """Benchmark 2's cold starts at one client: invokers restarted between single cold starts,
    overlay off and on in turn (`--prewarm 0`), so each new container gets the address the last
    one had on the action network. Prints each one's `initTime` and address: an `/init` near a
    second is a connect that waited for the address's ARP entry."""
    where = {"exec": {"kind": "python:3", "code": "import socket\ndef main(args):\n    return {'host': socket.gethostname()}\n"},
             "limits": {"memory": 128}}
    slow = {"off": 0, "on": 0}
    with wb.Stack("ipreuse", user_memory="10240 MB") as stack:
        for number in range(rounds):
            for mode in ("off", "on"):
                stack.restart_invokers(pc.MODES[mode])
                name = "cold-%s-%d" % (mode, number)
                stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name, where)
                began = time.perf_counter()
                status, record = stack.request("POST", "/namespaces/_/actions/%s?blocking=true" % name, {"instanceID": name})
                latency = time.perf_counter() - began
                host = record.get("response", {}).get("result", {}).get("host") if status == 200 else None
                address = subprocess.run(["docker", "inspect", "-f", "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", host or "-"],
                                         capture_output=True, text=True).stdout.strip()
                init = wb.annotation(record, "initTime")
                slow[mode] += init is not None and init > 300
                print("overlay %-3s %s, /init %s ms: %s" % (mode, wb.fmt_seconds(latency), init, address), flush=True)
    print("/init over 300 ms: %d of %d with the overlay off, %d of %d with it on" % (slow["off"], rounds, slow["on"], rounds))


def kafkahop(round_trips=1000):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    port = wb.free_port()
    brokers = "127.0.0.1:%d" % port
    broker = subprocess.Popen(wb.broker_command(brokers), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wb.wait_port(port)
        for wait in (10, 2, 1):
            there, back = "hop-there-%d" % wait, "hop-back-%d" % wait
            admin = AdminClient({"bootstrap.servers": brokers})  # kept: its futures die with it
            for future in admin.create_topics([NewTopic(there, 1, 1), NewTopic(back, 1, 1)]).values():
                future.result()

            def consumer(topic):
                c = Consumer({"bootstrap.servers": brokers, "group.id": topic, "enable.auto.commit": False, "fetch.wait.max.ms": wait,
                              "enable.partition.eof": False})
                c.assign([TopicPartition(topic, 0, -1)])  # from the end, as the platform's consumers
                return c
            producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all"})
            inbound, outbound = consumer(there), consumer(back)
            stop = threading.Event()

            def echo():
                echo_producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all"})
                while not stop.is_set():
                    message = inbound.poll(0.1)
                    if message is not None and message.error() is None:
                        echo_producer.produce(back, message.value())
                        echo_producer.poll(0)
                echo_producer.flush(5)
            thread = threading.Thread(target=echo, daemon=True)
            thread.start()
            samples = []
            for n in range(round_trips + 20):  # the first 20 warm the connections up
                began = time.perf_counter()
                producer.produce(there, b"%d" % n)
                producer.poll(0)
                resend = time.time() + 3  # a consumer not yet at the end misses the first (warm-up only)
                while True:
                    message = outbound.poll(0.5)
                    if message is not None and message.error() is None and message.value() == b"%d" % n:
                        break
                    if time.time() > resend:
                        if n >= 20:
                            raise RuntimeError("round trip %d never came back" % n)
                        producer.produce(there, b"%d" % n)
                        producer.poll(0)
                        resend = time.time() + 3
                if n >= 20:
                    samples.append(time.perf_counter() - began)
            stop.set()
            thread.join()
            for c in (inbound, outbound):
                c.close()
            print("fetch.wait.max.ms %3d: two hops p50 %s, p90 %s, p99 %s (%d round trips)" % (
                wait, wb.fmt_seconds(wb.percentile(samples, 50)), wb.fmt_seconds(wb.percentile(samples, 90)),
                wb.fmt_seconds(wb.percentile(samples, 99)), len(samples)), flush=True)
    finally:
        os.killpg(broker.pid, 15)
        broker.wait(10)


FETCH_WAITS = {  # name: flags for controller and invokers
    "3/20 (default)": [],
    "10/10": ["--kafka-fetch-wait", "10", "--kafka-control-fetch-wait", "10"],
    "2/20": ["--kafka-fetch-wait", "2", "--kafka-control-fetch-wait", "20"],
}


def fetchwait(trials=2):
    def trial(name, number):
        flags = FETCH_WAITS[name]
        with wb.Stack("fetchwait", invoker_args=flags, controller_args=flags, user_memory="10240 MB") as stack:
            stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
            pc.closed_loop(stack, "noop", 1, 10)  # its container
            one = pc.summarize(*pc.closed_loop(stack, "noop", 1, 200))
            pc.closed_loop(stack, "noop", 16, 25)  # the containers 16 clients need
            many = pc.summarize(*pc.closed_loop(stack, "noop", 16, 25))
            broker = wb.ProcessSampler(stack.pid("broker"))
            before = broker.cpu()
            time.sleep(5)
            idle = (broker.cpu() - before) / 5 * 100
        print("fetch waits %s (activations/control, ms): 1 client p50 %s p99 %s; 16 clients %.0f/s p99 %s; broker idle CPU %.0f%%" % (
            name, wb.fmt_seconds(one["p50"]), wb.fmt_seconds(one["p99"]), many["throughput"], wb.fmt_seconds(many["p99"]), idle), flush=True)
    wb.interleave(list(FETCH_WAITS), trials, trial)


def context_switches(pid):
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as status:
                for line in status:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total


class ContainersCPU:
    """CPU seconds of every Docker container together: cgroup v1's cpuacct for the `docker`
    parent, or on cgroup v2 the sum over each container's own cgroup."""

    def cpu(self):
        try:
            with open("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage") as usage:
                return int(usage.read()) / 1e9
        except FileNotFoundError:
            total = 0
            for path in glob.glob("/sys/fs/cgroup/docker/*/cpu.stat") + glob.glob("/sys/fs/cgroup/system.slice/docker-*.scope/cpu.stat"):
                with open(path) as stat:
                    total += int(stat.readline().split()[1])  # usage_usec
            return total / 1e6


def cpusplit(clients=16, per_client=100):
    """CPUSPLIT_INSTANCES=1: every invoke carries an instance ID of its own (an address-map entry
    added and removed per activation); CPUSPLIT_OVERLAY=off: the invokers run `--no-overlay`."""
    instances = os.environ.get("CPUSPLIT_INSTANCES") == "1"
    cpu_bound = os.environ.get("CPUSPLIT_ACTION") == "cpu"  # benchmark 2's action instead of the no-op
    action = {"exec": {"kind": "python:3", "code": overhead.CODE}, "limits": {"memory": 128}} if cpu_bound else NOOP
    body = (lambda client, n: {"instanceID": "c%d-%d" % (client, n)}) if instances else None
    if cpu_bound:
        per_client = min(per_client, 20)
    flags = pc.MODES[os.environ.get("CPUSPLIT_OVERLAY", "on")] + os.environ.get("CPUSPLIT_INVOKER_FLAGS", "").split()
    with wb.Stack("cpusplit", invoker_args=flags, user_memory="10240 MB") as stack:
        stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", action)
        pc.closed_loop(stack, "noop", 1, 10, body)
        pc.closed_loop(stack, "noop", clients, 10, body)
        pc.closed_loop(stack, "noop", clients, 5, body)
        names = list(stack.processes)
        samplers = {name: wb.ProcessSampler(stack.pid(name)) for name in names}
        samplers["dockerd"] = wb.ProcessSampler(int(subprocess.check_output(["pidof", "dockerd"]).split()[0]))
        samplers["containers"] = ContainersCPU()
        switches = {name: context_switches(stack.pid(name)) for name in names}
        cpu = {name: sampler.cpu() for name, sampler in samplers.items()}
        wall, samples = pc.closed_loop(stack, "noop", clients, per_client, body)
        count = len(samples)
        summary = pc.summarize(wall, samples)
        print("%s%d clients x %d: %.0f/s p50 %s p99 %s" % ("instance IDs, " if instances else "", clients, per_client, summary["throughput"], wb.fmt_seconds(summary["p50"]), wb.fmt_seconds(summary["p99"])))
        for name, sampler in samplers.items():
            line = "  %-11s %.3f ms CPU per activation" % (name, (sampler.cpu() - cpu[name]) / count * 1000)
            if name in switches:
                line += ", %.1f context switches" % ((context_switches(stack.pid(name)) - switches[name]) / count)
            print(line)
        one = pc.summarize(*pc.closed_loop(stack, "noop", 1, 200))
        print("1 client x 200 after: p50 %s p99 %s" % (wb.fmt_seconds(one["p50"]), wb.fmt_seconds(one["p99"])), flush=True)


def read_pcap(path):
    """(timestamp, source ip, source port, destination ip, destination port, payload) of every TCP
    segment with a payload in a classic pcap file (Ethernet or Linux cooked link type)."""
    import struct
    out = []
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return out
        magic, = struct.unpack("<I", header[:4])
        nano = magic == 0xA1B23C4D
        link, = struct.unpack("<I", header[20:24])
        skip = {1: 14, 113: 16}.get(link)
        if skip is None:
            raise RuntimeError("pcap link type %d not read" % link)
        while True:
            record = f.read(16)
            if len(record) < 16:
                break
            seconds, fraction, captured, _ = struct.unpack("<IIII", record)
            frame = f.read(captured)
            if frame[skip - 2:skip] != b"\x08\x00":  # IPv4 only
                continue
            ip = frame[skip:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 6:
                continue
            total, = struct.unpack(">H", ip[2:4])
            tcp = ip[ihl:]
            offset = (tcp[12] >> 4) * 4
            payload_length = total - ihl - offset
            if payload_length <= 0:
                continue
            source_port, destination_port = struct.unpack(">HH", tcp[:4])
            out.append((seconds + fraction / (1e9 if nano else 1e6), ip[12:16], source_port, ip[16:20], destination_port,
                        tcp[offset:offset + payload_length], payload_length))
    return out


def socket_owners(pids):
    """{local port: process name} for the established TCP sockets of the given {pid: name}."""
    import re
    owners = {}
    for line in subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        for pid in re.findall(r"pid=(\d+)", line):
            if int(pid) in pids:
                owners[int(fields[2].rsplit(":", 1)[1])] = pids[int(pid)]
    return owners


HOP_STEPS = ["HTTP request → Produce (controller)", "Produce → Fetch answer (activation hop)", "Fetch answer → /run (invoker)",
             "/run (proxy and action)", "/run answer → Produce (invoker: logs, ack)", "Produce → Fetch answer (ack hop)",
             "Fetch answer → HTTP answer (controller: store, answer)"]


def hop_trial(config, invokes):
    import struct
    mode, wait, binary = config.split("|")
    waits = ["--kafka-fetch-wait", wait]
    default_bin, wb.BIN = wb.BIN, binary
    try:
        with wb.Stack("hops", invoker_args=pc.MODES[mode] + ["--prewarm", "1"] + waits, controller_args=waits, user_memory="10240 MB") as stack:
            stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
            pc.closed_loop(stack, "noop", 1, 20)
            network = wb.docker("network", "inspect", "--format", "{{.Id}}", "whiskmesh-actions").strip()
            pids = {stack.pid(name): name for name in stack.processes}
            broker = wb.ProcessSampler(stack.pid("broker"))
            idle = broker.cpu()
            time.sleep(3)
            idle = (broker.cpu() - idle) / 3
            captures = []
            try:
                for interface in ("lo", "br-" + network[:12]):
                    path = os.path.join(stack.dir, "%s.pcap" % interface)
                    captures.append((path, subprocess.Popen(
                        ["tcpdump", "-i", interface, "-nn", "-s", "256", "-B", "16384", "--immediate-mode", "-U", "-w", path,
                         "tcp and (port %d or port %d or port 8080)" % (stack.kafka_port, stack.api_port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
                time.sleep(1.5)
                connection = http.client.HTTPConnection("127.0.0.1", stack.api_port, timeout=60)
                headers = {"Authorization": wb.GUEST_AUTHORIZATION, "Content-Type": "application/json"}
                windows = []
                for _ in range(invokes):
                    began = time.time()
                    connection.request("POST", "/api/v1/namespaces/_/actions/noop?blocking=true", body=b"{}", headers=headers)
                    response = connection.getresponse()
                    response.read()
                    windows.append((began, time.time(), response.status))
                client_port = connection.sock.getsockname()[1]
                owners = socket_owners(pids)
                connection.close()
                time.sleep(0.5)
            finally:
                # Stopped whatever happened: tcpdump flushes its file on SIGINT.
                for _, process in captures:
                    process.send_signal(signal.SIGINT)
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            packets = sorted(p for path, _ in captures for p in read_pcap(path))
            pc.closed_loop(stack, "noop", 16, 25)  # the containers 16 clients need
            busy = broker.cpu()
            many = pc.summarize(*pc.closed_loop(stack, "noop", 16, 25))
            busy = (broker.cpu() - busy) / (many["n"] or 1)
    finally:
        wb.BIN = default_bin
    # Events: (time, kind, process)
    events, kinds, asked, held = [], {}, {}, {}
    for t, _, sport, _, dport, payload, length in packets:
        if dport == stack.api_port and sport == client_port:
            events.append((t, "http-request", "controller"))
        elif sport == stack.api_port and dport == client_port:
            events.append((t, "http-answer", "controller"))
        elif dport == 8080:
            if payload.startswith(b"POST /run"):
                events.append((t, "run", "invoker"))
        elif sport == 8080:
            if payload.startswith(b"HTTP/"):
                events.append((t, "run-answer", "invoker"))
        elif dport == stack.kafka_port and len(payload) >= 12:
            key, = struct.unpack(">h", payload[4:6])
            correlation, = struct.unpack(">i", payload[8:12])
            kinds[(sport, correlation)] = key
            asked[(sport, correlation)] = t
            if key == 0:
                events.append((t, "produce", owners.get(sport, "?")))
        elif sport == stack.kafka_port and len(payload) >= 8:
            size, correlation = struct.unpack(">ii", payload[:8])
            if kinds.get((dport, correlation)) == 1 and size > 400:  # a Fetch answer with records
                events.append((t, "fetch-records", owners.get(dport, "?")))
                held[t] = t - asked[(dport, correlation)]
            elif kinds.get((dport, correlation)) == 0:
                events.append((t, "produce-answer", owners.get(dport, "?")))
                held[t] = t - asked[(dport, correlation)]
    order = [("http-request", "controller"), ("produce", "controller"), ("fetch-records", "invoker"), ("run", "invoker"),
             ("run-answer", "invoker"), ("produce", "invoker"), ("fetch-records", "controller"), ("http-answer", "controller")]
    steps, totals, matched = [[] for _ in HOP_STEPS], [], 0
    fetch_held = {"invoker": [], "controller": []}
    index = 0
    for began, ended, status in windows:
        while index < len(events) and events[index][0] < began:
            index += 1
        times, j = [], index
        for kind, owner in order:
            while j < len(events) and events[j][0] <= ended and not (
                    events[j][1] == kind and events[j][2].startswith(owner)):
                j += 1
            if j >= len(events) or events[j][0] > ended:
                break
            times.append(events[j][0])
        if status != 200 or len(times) != len(order):
            continue
        matched += 1
        fetch_held["invoker"].append(held[times[2]])
        fetch_held["controller"].append(held[times[6]])
        for n in range(len(HOP_STEPS)):
            steps[n].append(times[n + 1] - times[n])
        totals.append((ended - began, times[0] - began, ended - times[-1]))
    print("%s, overlay %s, fetch wait %s ms: %d of %d invokes matched; client latency p50 %s (client → controller %s, controller → client %s)" % (
        config.split("|")[2], mode, wait, matched, invokes, wb.fmt_seconds(wb.median([t[0] for t in totals])), wb.fmt_seconds(wb.median([t[1] for t in totals])),
        wb.fmt_seconds(wb.median([t[2] for t in totals]))), flush=True)
    for name, values in zip(HOP_STEPS, steps):
        print("  %-58s p50 %9s  p90 %9s" % (name, wb.fmt_seconds(wb.median(values)), wb.fmt_seconds(wb.percentile(values, 90))), flush=True)
    print("  the Fetch that brought the activation was held %s (p50), the ack's %s; a Produce's answer took %s" % (
        wb.fmt_seconds(wb.median(fetch_held["invoker"])), wb.fmt_seconds(wb.median(fetch_held["controller"])),
        wb.fmt_seconds(wb.median([held[e[0]] for e in events if e[1] == "produce-answer"]))), flush=True)
    print("  broker idle %.0f %% of a core; 16 clients after it: %.0f/s, p99 %s, broker %.2f ms CPU per activation" % (
        idle * 100, many["throughput"], wb.fmt_seconds(many["p99"]), busy * 1000), flush=True)


def hops(trials=2):
    if subprocess.run(["which", "tcpdump"], capture_output=True).returncode != 0:
        sys.exit("hops needs tcpdump (apt-get install tcpdump)")
    invokes = int(os.environ.get("HOPS_INVOKES", "300"))
    configs = ["%s|%s|%s" % (mode, wait, binary) for binary in os.environ.get("HOPS_BIN_DIRS", wb.BIN).split(",")
               for wait in os.environ.get("HOPS_FETCH_WAITS", "3").split(",") for mode in os.environ.get("HOPS_OVERLAY", "off,on").split(",")]
    wb.interleave(configs, int(os.environ.get("HOPS_TRIALS", str(trials))), lambda config, number: hop_trial(config, invokes))


def stemload(trials=2, clients=64):
    def trial(config, number):
        limit, binary = config.split("|")
        default_bin, wb.BIN = wb.BIN, binary
        try:
            with wb.Stack("stemload", invoker_args=["--prewarm", "1", "--prewarm-burst-limit", limit], user_memory="10240 MB") as stack:
                pc.activate_namespace(stack)
                stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
                count = lambda: len(stack.container_ids())
                first = pc.summarize(*pc.closed_loop(stack, "noop", clients, pc.PER_LEVEL))
                before = count()
                steady = pc.summarize(*pc.closed_loop(stack, "noop", clients, pc.steady_count(clients)))
                after = count()
                time.sleep(STEMLOAD_SETTLE)
                settled = count()
        finally:
            wb.BIN = default_bin
        print("%s, burst limit %s: first pass %.0f/s p99 %s; steady %.0f/s p50 %s p99 %s; containers %d → %d during the steady pass, %d %.0f s after it" % (
            binary, limit, first["throughput"], wb.fmt_seconds(first["p99"]), steady["throughput"], wb.fmt_seconds(steady["p50"]),
            wb.fmt_seconds(steady["p99"]), before, after, settled, STEMLOAD_SETTLE), flush=True)
    configs = ["%s|%s" % (limit, binary) for binary in os.environ.get("STEMLOAD_BIN_DIRS", wb.BIN).split(",")
               for limit in os.environ.get("STEMLOAD_LIMITS", "8,1").split(",")]
    clients = int(os.environ.get("STEMLOAD_CLIENTS", str(clients)))
    wb.interleave(configs, int(os.environ.get("STEMLOAD_TRIALS", str(trials))), trial)


def bigmap(trials=2):
    """Real invokers beside simulated ones (benchmark 4's, announcing no memory, so never given an
    activation) that hold BIGMAP_INSTANCES (10,000) instances of the namespace `guest` and replace
    BIGMAP_CHURN (100) of them a second: every change is a delta each real invoker applies to its
    copy of guest's map and writes to guest's `map.json`. Meanwhile one client invokes a warm no-op
    of guest BIGMAP_INVOKES (400) times, then 16 clients 50 times each; the real invokers' CPU over
    the churn. BIGMAP_BIN_DIRS: builds to compare, interleaved."""
    import multiprocessing as mp
    import directory
    size = int(os.environ.get("BIGMAP_INSTANCES", "10000"))
    churn = float(os.environ.get("BIGMAP_CHURN", "100"))
    invokes = int(os.environ.get("BIGMAP_INVOKES", "400"))
    simulators = 5

    def trial(binary, number):
        default_bin, wb.BIN = wb.BIN, binary
        context = mp.get_context("spawn")
        try:
            with wb.Stack("bigmap", invoker_args=["--prewarm", "1"], user_memory="10240 MB") as stack:
                commands = [context.Queue() for _ in range(simulators)]
                reports = context.Queue()
                sims = [context.Process(target=directory.simulated_invoker, daemon=True,
                                        args=(10 + i, stack.brokers, stack.prefix, commands[i], reports, "0 B", churn / simulators))
                        for i in range(simulators)]
                for sim in sims:
                    sim.start()
                try:
                    stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
                    pc.closed_loop(stack, "noop", 1, 20)
                    for q in commands:
                        q.put(("target", size // simulators))
                    directory.wait_for_size(stack, size)
                    mapfile = glob.glob(os.path.join(stack.dir, "**", "map.json"), recursive=True)
                    time.sleep(3)
                    invokers = {name: wb.ProcessSampler(stack.pid(name)) for name in stack.processes if name.startswith("invoker")}
                    cpu = {name: sampler.cpu() for name, sampler in invokers.items()}
                    for q in commands:
                        q.put(("churn", True))
                    time.sleep(1)
                    began = time.time()
                    one = pc.summarize(*pc.closed_loop(stack, "noop", 1, invokes))
                    many = pc.summarize(*pc.closed_loop(stack, "noop", 16, 50))
                    seconds = time.time() - began
                    used = {name: (sampler.cpu() - cpu[name]) / seconds for name, sampler in invokers.items()}
                    for q in commands:
                        q.put(("churn", False))
                finally:
                    directory.stop_simulators(commands, sims)
        finally:
            wb.BIN = default_bin
        print("%s: %d instances, %.0f changes/s: 1 client p50 %s p99 %s; 16 clients %.0f/s p99 %s; invokers' CPU %s (%d map files)" % (
            binary, size, churn, wb.fmt_seconds(one["p50"]), wb.fmt_seconds(one["p99"]), many["throughput"], wb.fmt_seconds(many["p99"]),
            ", ".join("%s %.0f %%" % (name, share * 100) for name, share in sorted(used.items())), len(mapfile)), flush=True)
    wb.interleave(os.environ.get("BIGMAP_BIN_DIRS", wb.BIN).split(","), int(os.environ.get("BIGMAP_TRIALS", str(trials))), trial)


def idle(trials=2, seconds=20):
    def trial(mode, number):
        with wb.Stack("idle", invoker_args=pc.MODES[mode], user_memory="10240 MB") as stack:
            stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
            pc.closed_loop(stack, "noop", 1, 10)
            time.sleep(3)
            samplers = {name: wb.ProcessSampler(stack.pid(name)) for name in stack.processes}
            before = {name: sampler.cpu() for name, sampler in samplers.items()}
            time.sleep(seconds)
            print("overlay %s, idle %d s: %s" % (mode, seconds, ", ".join(
                "%s %.1f %%" % (name, (sampler.cpu() - before[name]) / seconds * 100) for name, sampler in samplers.items())), flush=True)
    wb.interleave(list(pc.MODES), trials, trial)


def attaches():
    label = "%s=attaches-%d" % (wb.LABEL, os.getpid())
    network = "whiskmesh-probe-attaches-%d" % os.getpid()
    image = os.environ.get("WHISK_TEST_IMAGE", "whiskmesh/busybox:latest")

    def connect(container):
        began = time.perf_counter()
        wb.docker("network", "connect", network, container)
        return time.perf_counter() - began
    try:
        wb.docker("network", "create", "-d", "overlay", "--attachable", "--internal", "--label", label, network)
        # The anchor keeps the overlay's sandbox on the host: every batch measures later attaches.
        wb.docker("run", "-d", "--label", label, "--network", network, image, "sleep", "600")
        for size in [int(n) for n in os.environ.get("ATTACHES", "1,4,16").split(",")] * 2:
            containers = [wb.docker("run", "-d", "--label", label, image, "sleep", "600") for _ in range(size)]
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=size) as pool:
                each = sorted(pool.map(connect, containers))
            print("%2d attaches at once: %.2f s in all, each p50 %.2f s, max %.2f s" % (
                size, time.perf_counter() - began, each[len(each) // 2], each[-1]), flush=True)
            wb.docker("rm", "-f", *containers)
    finally:
        leftovers = wb.docker("ps", "-aq", "--filter", "label=" + label, check=False).split()
        if leftovers:
            wb.docker("rm", "-f", *leftovers, check=False)
        wb.docker("network", "rm", network, check=False)


def settle():
    gap = float(os.environ.get("SETTLE_GAP", "3"))

    def trial(config, number):
        mode, pause = config.split("|")
        with wb.Stack("settle", invoker_args=pc.MODES[mode] + ["--prewarm", "1"], user_memory="10240 MB") as stack:
            pc.activate_namespace(stack)
            stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
            pc.closed_loop(stack, "noop", 1, pc.PER_LEVEL)
            time.sleep(float(pause))
            count = lambda: len(stack.container_ids())
            before = count()
            steady = pc.summarize(*pc.closed_loop(stack, "noop", 1, 200))
            print("overlay %s, steady pass %s s after the first: p50 %s p99 %s; containers %d → %d" % (
                mode, pause, wb.fmt_seconds(steady["p50"]), wb.fmt_seconds(steady["p99"]), before, count()), flush=True)
    configs = ["%s|%g" % (mode, pause) for pause in (0, gap) for mode in pc.MODES]
    wb.interleave(configs, int(os.environ.get("SETTLE_TRIALS", "2")), trial)


def topics():
    from confluent_kafka import Consumer, TopicPartition

    def ends(stack):
        consumer = Consumer({"bootstrap.servers": stack.brokers, "group.id": "probe-topics-%d" % os.getpid()})
        try:
            return {name[len(stack.prefix):]: consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10)[1]
                    for name in consumer.list_topics(timeout=10).topics if name.startswith(stack.prefix)}
        finally:
            consumer.close()

    for mode in pc.MODES:
        with wb.Stack("topics", invoker_args=pc.MODES[mode] + ["--prewarm", "1"], user_memory="10240 MB") as stack:
            pc.activate_namespace(stack)
            stack.request("PUT", "/namespaces/_/actions/noop?overwrite=true", NOOP)
            pc.closed_loop(stack, "noop", 1, pc.PER_LEVEL)
            for what, work in (("10 s idle", lambda: time.sleep(10)), ("200 invokes", lambda: pc.closed_loop(stack, "noop", 1, 200))):
                before = ends(stack)
                work()
                after = ends(stack)
                print("overlay %s, %s: %s" % (mode, what, ", ".join("%s %d" % (name, after[name] - before.get(name, 0)) for name in sorted(after))), flush=True)


STEMLOAD_SETTLE = float(os.environ.get("STEMLOAD_SETTLE", "5"))


def history(steps=(0, 20000, 20000, 20000)):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    hops = int(os.environ.get("HISTORY_HOPS", "150"))
    port = wb.free_port()
    brokers = "127.0.0.1:%d" % port
    broker = subprocess.Popen(wb.broker_command(brokers), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wb.wait_port(port)
        admin = AdminClient({"bootstrap.servers": brokers})
        for future in admin.create_topics([NewTopic("full", 1, 1), NewTopic("small", 1, 1),
                                           NewTopic("kept", 1, 1, config={"retention.ms": "2000", "segment.ms": "500"})]).values():
            future.result()
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})

        def fill(topic, count):
            for n in range(count):
                producer.produce(topic, b"x" * 400, partition=0)
                if n % 100 == 0:
                    producer.poll(0)
                if n % 5000 == 0:
                    producer.flush(60)
            producer.flush(60)

        def hop(topic):
            consumer = Consumer({"bootstrap.servers": brokers, "group.id": "probe-history-%s-%f" % (topic, time.time()),
                                 "fetch.wait.max.ms": 3, "enable.auto.commit": False})
            # Tansu answers with its last batch's base offset + 1 (docs §10 item 38): the batch's
            # rest is read here, and counted.
            end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
            consumer.assign([TopicPartition(topic, 0, end)])
            time.sleep(1)
            while True:
                message = consumer.poll(0.2)
                if message is None:
                    break
                if message.error() is None:
                    end = max(end, message.offset() + 1)
            sampler, samples = wb.ProcessSampler(broker.pid), []
            cpu = sampler.cpu()
            for n in range(hops):
                began = time.perf_counter()
                producer.produce(topic, b"y", partition=0)
                producer.poll(0)
                while True:
                    message = consumer.poll(1)
                    if message is not None and message.error() is None:
                        break
                    if time.perf_counter() - began > 10:
                        raise RuntimeError("hop %d on %s never arrived" % (n, topic))
                samples.append(time.perf_counter() - began)
                time.sleep(0.01)
            used = sampler.cpu() - cpu
            consumer.close()
            return "hop p50 %s, p90 %s, broker CPU %.2f ms per hop (%d messages before)" % (
                wb.fmt_seconds(wb.percentile(samples, 50)), wb.fmt_seconds(wb.percentile(samples, 90)), used / hops * 1000, end)

        fill("small", 1)
        for step in steps:
            fill("full", step)
            print("full partition: %s" % hop("full"), flush=True)
        print("a partition of one message beside it: %s" % hop("small"), flush=True)
        fill("kept", 20000)
        time.sleep(8)
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": "probe-history-kept"})
        low, high = consumer.get_watermark_offsets(TopicPartition("kept", 0), timeout=10)
        consumer.close()
        print("retention.ms 2000, 8 s after 20,000 messages: offsets %d-%d kept%s" % (
            low, high, " (nothing removed)" if low == 0 else ""), flush=True)
    finally:
        os.killpg(broker.pid, 15)
        broker.wait(10)

if __name__ == "__main__":
    probes = {"brokergrowth": brokergrowth, "stemcold": stemcold, "burst": burst, "firstpass": firstpass, "ipreuse": ipreuse, "kafkahop": kafkahop, "fetchwait": fetchwait,
              "cpusplit": cpusplit, "hops": hops, "stemload": stemload, "bigmap": bigmap,
              "idle": idle, "attaches": attaches, "settle": settle, "topics": topics, "history": history}
    if len(sys.argv) != 2 or sys.argv[1] not in probes:
        sys.exit("usage: platform_probes.py %s" % "|".join(probes))
    wb.run_benchmark(probes[sys.argv[1]])
