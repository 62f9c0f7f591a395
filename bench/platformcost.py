"""Benchmark 10, the platform's own cost: closed-loop blocking invokes over REST of a no-op Python
action and of a 50 ms CPU-bound one, at concurrency 1, 4, 16 and 64, with the overlay feature off
(`whisk-invoker --no-overlay`) and on, interleaved, each trial on a fresh platform. Each level
starts with a fresh action, so its first pass creates the containers it needs on the way; the
second pass is the steady state. Reported: activations per second, client latency p50 and p99, and
where the time of a steady-state activation goes, from its record:

- before the run: `waitTime` (the controller accepted it → a container was ready: Kafka to the
  invoker, the pool);
- the run: `duration` (the action and the proxy);
- after the run: the client's latency minus both (logs, the acknowledgement over Kafka, the
  controller's store, its HTTP answer, and the client's own HTTP).

The whole plan runs twice; docs/benchmarks.md shows both runs and marks where they disagree by more
than 25 %.

By default the invokers run `--prewarm 0` on a platform whose namespace has run nothing yet: the
worst case, in which every level's first pass also makes the namespace's overlay live on the host.
WHISK_BENCH_SETTING=user measures the setting the issue was found in (`scripts/run`): the invokers'
default stem cells, and another action of the namespace invoked once before the level (its
container stays warm, as the demo's do), results as `platform-user`. WHISK_BENCH_INVOKER_FLAGS adds
invoker flags, WHISK_BENCH_CONCURRENCY the levels ("1,4,16,64"), WHISK_BENCH_NAME the results' name.

    scripts/bench platform
    WHISK_BENCH_SETTING=user scripts/bench platform
"""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

CONCURRENCY = [int(c) for c in os.environ.get("WHISK_BENCH_CONCURRENCY", "1,4,16,64").split(",")]
PER_LEVEL = int(os.environ.get("WHISK_BENCH_PER_LEVEL", "25"))  # invokes per client thread and pass
# The steady pass has at least this many activations in all: 25 at one client made its p99 the
# slowest of 25 and its p50 a window of ~150 ms right after the level's cold start.
STEADY_MIN = int(os.environ.get("WHISK_BENCH_STEADY_MIN", "200"))

RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
MODES = {"off": ["--no-overlay"], "on": []}
# Results under another name: an earlier build's baseline (WHISK_BIN_DIR pointing at its binaries)
# goes to platform-before.json and its own table, next to the current build's.
SETTING = os.environ.get("WHISK_BENCH_SETTING", "worst")
if SETTING not in ("worst", "user"):
    sys.exit("WHISK_BENCH_SETTING must be worst or user")
NAME = os.environ.get("WHISK_BENCH_NAME", "platform" if SETTING == "worst" else "platform-user")
SETTING_ARGS = ([] if SETTING == "worst" else ["--prewarm", "1"]) + os.environ.get("WHISK_BENCH_INVOKER_FLAGS", "").split()
ACTIONS = {
    "noop": "def main(args):\n    return {}\n",
    "cpu50": "import time\ndef main(args):\n    end = time.process_time() + 0.05\n    while time.process_time() < end:\n        pass\n    return {}\n",
}


def steady_count(concurrency):
    """Invokes per client in a level's steady pass: PER_LEVEL, and STEADY_MIN in all at least."""
    return max(PER_LEVEL, -(-STEADY_MIN // concurrency))


def activate_namespace(stack, name="earlier"):
    """`scripts/run`'s setting: another action of the namespace ran once 3 s before (its container
    stays warm, and the stem cells it leads to are ready)."""
    stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                  {"exec": {"kind": "python:3", "code": ACTIONS["noop"]}, "limits": {"memory": 128}})
    status, _ = stack.request("POST", "/namespaces/_/actions/%s?blocking=true" % name, {})
    if status != 200:
        raise RuntimeError("the warm-up invoke answered %d" % status)
    time.sleep(3)


def closed_loop(stack, name, concurrency, count, parameters=None):
    """`concurrency` clients, each invoking `name` blocking `count` times over its own kept-alive
    connection; `parameters(client, n)` gives an invoke's parameters (none by default). Returns (wall
    seconds, samples)."""
    host, port = stack.api.split("//", 1)[1].split(":")
    headers = {"Authorization": wb.GUEST_AUTHORIZATION, "Content-Type": "application/json"}
    samples, lock = [], threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def client(number):
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        mine = []
        start.wait()
        for n in range(count):
            payload = b"{}" if parameters is None else json.dumps(parameters(number, n)).encode()
            began = time.perf_counter()
            try:
                connection.request("POST", "/api/v1/namespaces/_/actions/%s?blocking=true" % name, body=payload, headers=headers)
                response = connection.getresponse()
                body = json.loads(response.read() or b"null")
                status = response.status
            except (OSError, ValueError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
                mine.append({"ok": False, "latency": time.perf_counter() - began, "error": str(error)[:200]})
                continue
            latency = time.perf_counter() - began
            ok = status == 200 and isinstance(body, dict) and body.get("response", {}).get("success") is True
            wait, init = wb.annotation(body, "waitTime"), wb.annotation(body, "initTime")
            duration = body.get("duration") if isinstance(body, dict) else None
            mine.append({"ok": ok, "latency": latency, "wait": wait, "init": init, "duration": duration, "status": status,
                         "error": None if ok else str(body)[:200]})
        connection.close()
        with lock:
            samples.extend(mine)
    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, samples


def summarize(wall, samples):
    ok = [s for s in samples if s["ok"]]
    latencies = [s["latency"] for s in ok]
    warm = [s for s in ok if not s.get("init")]
    before = [s["wait"] / 1000 for s in warm if s.get("wait") is not None]
    run = [s["duration"] / 1000 for s in warm if s.get("duration") is not None]
    after = [s["latency"] - s["wait"] / 1000 - s["duration"] / 1000 for s in warm
             if s.get("wait") is not None and s.get("duration") is not None]
    return {"n": len(samples), "failures": len(samples) - len(ok), "throughput": len(ok) / wall if wall else None,
            "p50": wb.percentile(latencies, 50) if latencies else None, "p99": wb.percentile(latencies, 99) if latencies else None,
            "before_p50": wb.median(before), "run_p50": wb.median(run), "after_p50": wb.median(after), "cold": len(ok) - len(warm)}


def one_run(index):
    """{action: {concurrency: {mode: [{"first": summary, "steady": summary}]}}}

    Every trial gets a platform of its own: Tansu's memory engine answers fetches more slowly the
    more a partition holds (at one client, p50 9.7 ms on fresh topics, 45 ms after 13,000
    activations), so on one long-lived platform later trials measured the broker's history."""
    out = {}
    for action, code in ACTIONS.items():
        out[action] = {}
        for c in CONCURRENCY:
            def trial(mode, number):
                with wb.Stack(NAME, invoker_args=MODES[mode] + SETTING_ARGS, user_memory="10240 MB") as stack:
                    name = "%s-%d-%s-%d-%d" % (action, index, mode, c, number)
                    if SETTING == "user":
                        activate_namespace(stack)
                    stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                                  {"exec": {"kind": "python:3", "code": code}, "limits": {"memory": 128}})
                    first = summarize(*closed_loop(stack, name, c, PER_LEVEL))
                    steady = summarize(*closed_loop(stack, name, c, steady_count(c)))
                wb.log("run %d %s c=%d overlay %s: first %.0f/s p50 %s p99 %s; steady %.0f/s p50 %s p99 %s%s" % (
                    index, action, c, mode, first["throughput"] or 0, wb.fmt_seconds(first["p50"]), wb.fmt_seconds(first["p99"]),
                    steady["throughput"] or 0, wb.fmt_seconds(steady["p50"]), wb.fmt_seconds(steady["p99"]),
                    " (%d failed)" % (first["failures"] + steady["failures"]) if first["failures"] + steady["failures"] else ""))
                return {"first": first, "steady": steady}
            out[action][c] = wb.interleave(list(MODES), 1, trial)
    return out


def main():
    # 128 MB actions; room for 64 containers per invoker, so no eviction lands in a level.
    report([one_run(index) for index in range(1, RUNS + 1)])


def report(runs):
    rows, md, notes = [], [], []
    for action in ACTIONS:
        for c in CONCURRENCY:
            for mode in MODES:
                pair = []
                for index, run in enumerate(runs, 1):
                    point = run[action][c][mode][0]
                    first, steady = point["first"], point["steady"]
                    pair.append(steady)
                    rows.append([index, action, c, mode, first["throughput"], first["p50"], first["p99"], steady["throughput"],
                                 steady["p50"], steady["p99"], steady["before_p50"], steady["run_p50"], steady["after_p50"],
                                 first["failures"] + steady["failures"]])
                    md.append(["%s c=%d %s (run %d)" % (action, c, mode, index),
                               "%.0f/s, %s / %s" % (first["throughput"] or 0, wb.fmt_seconds(first["p50"]), wb.fmt_seconds(first["p99"])),
                               "%.0f/s" % (steady["throughput"] or 0), wb.fmt_seconds(steady["p50"]), wb.fmt_seconds(steady["p99"]),
                               "%s + %s + %s" % (wb.fmt_seconds(steady["before_p50"]), wb.fmt_seconds(steady["run_p50"]), wb.fmt_seconds(steady["after_p50"])),
                               str(first["failures"] + steady["failures"])])
                if len(pair) == 2:
                    for key, label in (("throughput", "steady activations/s"), ("p50", "steady p50"), ("p99", "steady p99")):
                        if wb.disagree(pair[0][key], pair[1][key]):
                            value = (lambda v: "%.0f/s" % v) if key == "throughput" else wb.fmt_seconds
                            notes.append("%s c=%d overlay %s %s: %s vs %s" % (action, c, mode, label, value(pair[0][key]), value(pair[1][key])))
    wb.write_csv(NAME, ["run", "action", "concurrency", "overlay", "first_per_s", "first_p50_s", "first_p99_s", "steady_per_s",
                              "steady_p50_s", "steady_p99_s", "before_run_p50_s", "run_p50_s", "after_run_p50_s", "failures"], rows)
    path = wb.save(NAME, {"runs": runs, "concurrency": CONCURRENCY, "perLevel": PER_LEVEL, "steadyMin": STEADY_MIN})
    info = json.load(open(path))["machine"]
    setting = ("Invokers with `--prewarm 0`; the namespace has run nothing before the level (its overlay is new on the host)"
               if SETTING == "worst" else
               "`scripts/run`'s setting: the invokers' default stem cells, and another action of the namespace invoked once "
               "3 s before the level (its container stays warm)")
    text = [("Machine: %s. " + setting + ". Two invokers; closed loop: each of c clients invokes blocking over its own kept-alive connection, %d "
            "times in the first pass and in the steady one at least %d activations in all; overlay off and on interleaved; a fresh 128 MB action per "
            "level, so the first pass includes creating its containers; every trial on a fresh platform (broker included). Where the time goes (steady state, p50 of each part): "
            "before the run (`waitTime`: controller → Kafka → invoker → container) + the run (`duration`) + after it (the "
            "client's latency minus both: logs, ack over Kafka, store, HTTP). Raw data: `docs/benchmarks/%s.json`, "
            "`%s.csv`.") % (wb.machine_line(info), PER_LEVEL, STEADY_MIN, NAME, NAME), "",
            wb.table(["action, concurrency, overlay", "first pass: rate, p50 / p99", "steady rate", "steady p50", "steady p99",
                      "before + run + after (p50)", "failures"], md), "",
            ("Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere")) if len(runs) > 1
            else "One run only: nothing to compare it with."]
    wb.update_doc(NAME, "\n".join(text))


if __name__ == "__main__":
    wb.run_benchmark(main)
