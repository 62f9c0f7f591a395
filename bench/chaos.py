"""Chaos run: mixed load on a private platform while invokers are SIGKILLed, the controller is
killed and restarted, and running action containers are `docker kill`ed; then every accepted
activation is accounted for.

    python bench/chaos.py [--duration S] [--rate R] [--short] [--record]

Load: plain, instance-ID and sequence activations, round robin, at R per second (mostly
non-blocking; every fifth blocking). Every action reports the start and end of each run to a
witness container on the namespace's overlay (a container of this run), which is how runs are
counted: an activation that ran twice shows two starts, at the same time if the two runs overlap.

Reports accepted, recorded (success / error by kind), lost (accepted, no record at the end), run
twice (and at the same time), and whether every invoker's address-map file returned to the truth
(no live instance left once everything ended). Exits 1 on any loss, any concurrent double run or
a map that did not return. With --record, writes docs/reliability/chaos.json and prints the table
for docs/reliability.md. Bounded: the load runs --duration seconds, the final wait at most 180 s.
Traffic goes to loopback and this run's own containers only.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

WITNESS_PORT = 7000
WITNESS = r'''
import socketserver, sys, time
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            sys.stdout.write("%.3f %s" % (time.time(), line.decode(errors="replace")))
            sys.stdout.flush()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", PORT), Handler).serve_forever()
'''.replace("PORT", str(WITNESS_PORT))

# A step reports its start and end to the witness and passes n and the witness on, so sequences
# chain. The start must reach the witness (retried for 10 s, else the activation fails with the
# reason), so every success was counted; the end is best effort (a run without an end was cut
# short, which the count allows for).
STEP = r'''
import os, socket, time
def tell(witness, event, n, within):
    deadline = time.time() + within
    while True:
        try:
            with socket.create_connection((witness, %d), timeout=2) as s:
                s.sendall(("%%s %%s %%s %%s\n" %% (TAG, event, n, os.environ.get("__OW_ACTIVATION_ID", "-"))).encode())
            return None
        except OSError as error:
            if time.time() >= deadline:
                return "%%s (from %%s)" %% (error, os.environ.get("__OW_OVERLAY_IP", "?"))
            time.sleep(0.2)
def main(args):
    failed = tell(args["w"], "start", args["n"], 10)
    if failed:
        return {"error": "the witness did not hear the start: %%s" %% failed}
    time.sleep(float(args.get("s", 0.3)))
    tell(args["w"], "end", args["n"], 0)
    return {"n": args["n"], "w": args["w"], "s": args.get("s", 0.3)}
''' % WITNESS_PORT

KINDS = ["plain", "instance", "sequence"]


def step_code(tag):
    return "TAG = %r\n%s" % (tag, STEP)


class Load:
    """Issues activations at a fixed rate from a thread pool and keeps what each call got."""

    def __init__(self, stack, witness, rate):
        self.stack, self.witness, self.rate = stack, witness, rate
        self.lock = threading.Lock()
        self.calls = []  # dicts: n, kind, blocking, status, id, error
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=48)
        self.futures = []

    def call(self, n, kind, blocking):
        params = {"n": n, "w": self.witness, "s": 0.3}
        name = "chaos-seq" if kind == "sequence" else "chaos-plain"
        if kind == "instance":
            params["instanceID"] = "i%d" % n
        entry = {"n": n, "kind": kind, "blocking": blocking, "status": None, "id": None, "error": None, "record": None}
        try:
            status, body = self.stack.request("POST", "/namespaces/_/actions/%s?blocking=%s" % (name, "true" if blocking else "false"),
                                              params, timeout=90)
            entry["status"] = status
            if isinstance(body, dict):
                entry["id"] = body.get("activationId")
                if blocking and status in (200, 500, 502) and "response" in body:
                    entry["record"] = body
                elif status not in (200, 202):
                    entry["error"] = body.get("error")
        except OSError as error:  # the controller was down or went down mid-call
            entry["error"] = str(error)
        with self.lock:
            self.calls.append(entry)

    def run(self, duration, faults, sample=None):
        """Sends for `duration` s, starting each fault at its time; calls `sample()` about once a second."""
        start = time.time()
        n = 0
        pending = sorted(faults, key=lambda f: f[0])
        while time.time() - start < duration:
            while pending and time.time() - start >= pending[0][0]:
                at, name, action = pending.pop(0)
                wb.log("t=%4.1f s  %s" % (time.time() - start, name))
                threading.Thread(target=action, daemon=True).start()
            n += 1
            if sample is not None and n % max(1, int(self.rate)) == 0:
                sample()
            self.futures.append(self.pool.submit(self.call, n, KINDS[n % 3], n % 5 == 0))
            time.sleep(max(0.0, start + n / self.rate - time.time()))
        concurrent.futures.wait(self.futures)
        self.pool.shutdown()


def witness_runs(witness_name):
    """Per (tag, n): the runs as [start, end or None] from the witness's log (instance-ID
    activations run the same action as plain ones, so both carry the tag "plain")."""
    lines = wb.docker("logs", witness_name, check=False).splitlines()
    runs = collections.defaultdict(list)
    for line in lines:
        parts = line.split()
        if len(parts) != 5:
            continue
        at, tag, event, n, activation = parts
        key = (tag, int(n))
        if event == "start":
            runs[key].append([float(at), None, activation])
        elif event == "end":
            open_runs = [r for r in runs[key] if r[1] is None]
            if open_runs:
                open_runs[0][1] = float(at)
    return runs


def overlapping(runs):
    for i, (s1, e1, _) in enumerate(runs):
        for s2, e2, _ in runs[i + 1:]:
            # A run without an end was cut short (its container or invoker killed): it is taken
            # to have ended at the latest when the other one started only if that one began
            # more than its duration later.
            end1 = e1 if e1 is not None else s1 + 0.3
            end2 = e2 if e2 is not None else s2 + 0.3
            if s1 < end2 and s2 < end1:
                return True
    return False


def map_instances(stack):
    left = {}
    for i in range(stack.invoker_count):
        root = stack.map_dir(i)
        for folder, _dirs, files in os.walk(root):
            if "map.json" in files:
                try:
                    with open(os.path.join(folder, "map.json")) as f:
                        instances = json.load(f).get("instances", [])
                except (OSError, ValueError):
                    continue
                if instances:
                    left["invoker%d" % i] = [x.get("id") for x in instances]
    return left


def running_action_containers(stack):
    return wb.docker("ps", "-q", "--filter", "label=%s=%s" % (wb.LABEL, stack.run), "--filter", "label=org.whiskmesh.invoker",
                     check=False).split()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--short", action="store_true", help="CI: 40 s, one fault of each kind")
    parser.add_argument("--record", action="store_true", help="write docs/reliability/chaos.json")
    options = parser.parse_args()
    duration = 40.0 if options.short else options.duration
    counts = collections.Counter()

    with wb.Stack("chaos", invokers=2, persistent=True, controller_args=["--slot-grace", "10", "--log-level", "info"],
                  invoker_args=["--log-level", "info"]) as stack:
        stack.put_action("chaos-plain", step_code("plain"), timeout=20_000)
        stack.put_action("chaos-step1", step_code("step1"), timeout=20_000)
        stack.put_action("chaos-step2", step_code("step2"), timeout=20_000)
        status, body = stack.request("PUT", "/namespaces/_/actions/chaos-seq?overwrite=true",
                                     {"exec": {"kind": "sequence", "components": ["/_/chaos-step1", "/_/chaos-step2"]}})
        if status != 200:
            raise RuntimeError("cannot create the sequence: %s" % body)
        # The namespace's overlay exists once an action ran; the witness joins it.
        stack.invoke("chaos-plain", {"n": 0, "w": "127.0.0.1", "s": 0})
        network = stack.overlay()
        witness_name = "wmchaos-witness-%s" % stack.run
        wb.docker("run", "-d", "--name", witness_name, "--label", "%s=%s" % (wb.LABEL, stack.run), "--network", network,
                  os.environ.get("WHISK_BASE_IMAGE", "whiskmesh/base:bookworm"), "python3", "-u", "-c", WITNESS)
        witness = wb.docker("inspect", "--format", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network, witness_name)

        def kill_invoker(i, down):
            def fault():
                stack.kill("invoker%d" % i)
                counts["invoker SIGKILLs"] += 1
                time.sleep(down)
                stack.start_invoker(i)
            return fault

        def kill_both(down):
            def fault():
                other = threading.Thread(target=kill_invoker(0, down))
                other.start()
                kill_invoker(1, down)()
                other.join()
            return fault

        def restart_controller(hard):
            def fault():
                if hard:
                    stack.kill("controller")
                else:
                    stack.stop_process("controller")
                counts["controller restarts (%s)" % ("SIGKILL" if hard else "SIGTERM")] += 1
                stack.start_controller()
            return fault

        def kill_containers(count):
            def fault():
                victims = running_action_containers(stack)[:count]
                for victim in victims:
                    wb.docker("kill", victim, check=False)
                counts["action containers killed"] += len(victims)
            return fault

        if options.short:
            faults = [(8, "SIGKILL invoker0 (back after 6 s)", kill_invoker(0, 6)),
                      (18, "docker kill 2 running action containers", kill_containers(2)),
                      (24, "SIGKILL the controller and restart it", restart_controller(True))]
        else:
            d = duration
            faults = [(d * 0.10, "SIGKILL invoker0 (back after 8 s)", kill_invoker(0, 8)),
                      (d * 0.25, "docker kill 3 running action containers", kill_containers(3)),
                      (d * 0.38, "SIGKILL the controller and restart it", restart_controller(True)),
                      (d * 0.52, "SIGKILL invoker1 (back after 8 s)", kill_invoker(1, 8)),
                      (d * 0.64, "docker kill 3 running action containers", kill_containers(3)),
                      (d * 0.75, "SIGTERM the controller and restart it", restart_controller(False)),
                      (d * 0.85, "SIGKILL invoker0 and invoker1 (back after 5 s)", kill_both(5))]

        load = Load(stack, witness, options.rate)
        wb.log("load: %.0f s at %.0f/s with faults; witness at %s" % (duration, options.rate, witness))
        started = time.time()
        # Positive control of the map check at the end: live instances do show in the map files.
        seen_in_maps = set()
        load.run(duration, faults, sample=lambda: seen_in_maps.update(i for ids in map_instances(stack).values() for i in ids))
        wb.log("load done after %.0f s; waiting for records" % (time.time() - started))
        stack.wait_invokers(timeout=120)

        accepted = [c for c in load.calls if c["id"] and c["status"] in (200, 202, 500, 502)]
        refused = [c for c in load.calls if not c["id"]]
        records = {}
        deadline = time.time() + 180
        while time.time() < deadline:
            for call in accepted:
                if call["id"] in records:
                    continue
                if call["record"] is not None:
                    records[call["id"]] = call["record"]
                    continue
                status, body = stack.request("GET", "/namespaces/_/activations/%s" % call["id"])
                if status == 200:
                    records[call["id"]] = body
            if len(records) == len(accepted):
                break
            time.sleep(2)
        lost = [c for c in accepted if c["id"] not in records]

        map_deadline = time.time() + 20
        left = map_instances(stack)
        while left and time.time() < map_deadline:
            time.sleep(0.5)
            left = map_instances(stack)

        outcomes = collections.Counter()
        reasons = collections.Counter()
        for call in accepted:
            record = records.get(call["id"])
            if record is None:
                continue
            status = record.get("response", {}).get("status", "?")
            outcomes[status] += 1
            if status != "success":
                error = str(record.get("response", {}).get("result", {}).get("error", ""))
                reasons[error[:90]] += 1
        runs = witness_runs(witness_name)
        twice = sorted(key for key, value in runs.items() if len(value) > 1)
        concurrent_twice = sorted(key for key in twice if overlapping(runs[key]))
        # Positive control of the run count: every plain or instance-ID activation that succeeded
        # was seen starting by the witness (a witness that saw nothing would report no double run).
        unseen = sorted(c["n"] for c in accepted if c["kind"] != "sequence" and c["id"] in records
                        and records[c["id"]].get("response", {}).get("status") == "success" and ("plain", c["n"]) not in runs)

        result = {
            "durationSeconds": duration, "rate": options.rate, "faults": dict(counts),
            "calls": len(load.calls), "accepted": len(accepted), "refused": len(refused),
            "refusedReasons": dict(collections.Counter(str(c["error"])[:80] for c in refused).most_common(5)),
            "byKind": dict(collections.Counter(c["kind"] for c in accepted)),
            "recorded": len(records), "lost": len(lost), "lostIds": [c["id"] for c in lost][:20],
            "outcomes": dict(outcomes), "errorReasons": dict(reasons.most_common(8)),
            "runTwice": len(twice), "runTwiceAtTheSameTime": len(concurrent_twice),
            "runTwiceExamples": ["%s %d: %s" % (key[0], key[1], " ".join("%s@%.1f" % (r[2], r[0] - started) for r in runs[key]))
                                 for key in twice[:10]],
            "successesTheWitnessMissed": len(unseen),
            "instancesSeenInMapsDuringLoad": len(seen_in_maps),
            "mapReturnedToTruth": not left, "mapLeftovers": left,
        }
        print(json.dumps(result, indent=1))
        if options.record:
            wb.RESULTS = os.path.join(wb.ROOT, "docs", "reliability")
            wb.save("chaos", result)
        failed = lost or concurrent_twice or left or unseen or not seen_in_maps
        if failed:
            wb.log("FAILED: %d lost, %d run twice at the same time, map leftovers %s, %d successes the witness missed, %d instances "
                   "seen in the maps during the load" % (len(lost), len(concurrent_twice), left, len(unseen), len(seen_in_maps)))
            for name in sorted(os.listdir(stack.dir)):
                if name.endswith(".log"):
                    with open(os.path.join(stack.dir, name), errors="replace") as f:
                        wb.log("%s (last lines):\n%s" % (name, "".join(f.readlines()[-15:])))
        wb.log("accepted %d, recorded %d, lost %d, run twice %d (at the same time %d), map back to the truth: %s"
               % (len(accepted), len(records), len(lost), len(twice), len(concurrent_twice), not left))
    return 1 if failed else 0


if __name__ == "__main__":
    def interrupted(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        wb.log("interrupted")
        sys.exit(130)
