"""Peer-to-peer pipelines (seed 000's experiment, made real): K = 1, 4, 16 concurrent pipelines of
three components (make → pass → summarize) whose intermediate result is 1 KiB .. 64 MiB of JSON,
as a p2p sequence (annotation p2p: stage to stage over the overlay) and as a classic sequence
(every intermediate result through the invoker's completion message, the controller and the
next activation message, i.e. through Kafka twice per hop). Per configuration: end-to-end time of
each pipeline (the client's blocking invoke), bytes written to the platform's Kafka topics (a
consumer reads all of them), the controller's CPU seconds, and the failures (the classic
sequence stops at Kafka's 1 MiB message limit: the report says where). p2p and classic alternate
trial by trial; the whole plan runs twice.

    scripts/bench pipelines
"""
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

CONCURRENCY = [1, 4, 16]
SIZES = [1 << 10, 64 << 10, 512 << 10, 1 << 20, 16 << 20, 64 << 20]
# 16 pipelines of 64 MiB would hold 48 containers of several hundred MB on this machine at once.
SKIP = {(16, 64 << 20)}
TRIALS = int(os.environ.get("WHISK_BENCH_PIPE_TRIALS", "2"))
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
KINDS = ["p2p", "classic"]
MAKE = "def main(a):\n    return {'data': 'x' * int(a['size'])}\n"
PASS = "def main(a):\n    return {'data': a['data'], 'passed': True}\n"
SUMMARIZE = "def main(a):\n    return {'len': len(a['data']), 'passed': a.get('passed', False)}\n"


class KafkaBytes:
    """Counts the bytes of every message written to the stack's topics (read from their ends by a
    consumer thread with fixed assignments). The invokers' heartbeats on `health` never stop, so
    their idle rate is measured first and taken off each window (what a window adds on `health`,
    e.g. address-map changes, stays counted)."""

    def __init__(self, stack):
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition
        self.consumer = Consumer({"bootstrap.servers": stack.brokers, "group.id": "bench-bytes-%s" % stack.run,
                                  "enable.auto.commit": False})
        topics = [t for t in self.consumer.list_topics(timeout=10).topics if t.startswith(stack.prefix)]
        self.consumer.assign([TopicPartition(t, 0, OFFSET_END) for t in topics])
        self.total = 0
        self.last_work = time.time()
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        time.sleep(2)
        start = self.read()
        time.sleep(5)
        self.idle_rate = (self.read()[0] - start[0]) / (self.read()[1] - start[1])
        wb.log("Kafka: %d topics, idle heartbeat traffic %.0f B/s" % (len(topics), self.idle_rate))

    def loop(self):
        while self.running:
            for message in self.consumer.consume(500, 0.2):
                if message.error() is None:
                    with self.lock:
                        self.total += len(message.value() or b"")
                        if not message.topic().endswith("health"):
                            self.last_work = time.time()

    def read(self):
        with self.lock:
            return self.total, time.time()

    def quiet(self, seconds=1.0, patience=30.0):
        """Waits until no message other than a heartbeat came for `seconds` (at most `patience`)."""
        deadline = time.time() + patience
        while time.time() < deadline:
            with self.lock:
                if time.time() - self.last_work >= seconds:
                    return
            time.sleep(0.1)

    def window(self, start):
        """Bytes written since `start` (a read()), less the idle heartbeats."""
        total, now = self.read()
        return max(0, total - start[0] - self.idle_rate * (now - start[1]))

    def close(self):
        self.running = False
        self.thread.join(5)
        self.consumer.close()


def configuration(stack, kafka, kind, k, size):
    kafka.quiet()
    start = kafka.read()
    cpu = wb.ProcessSampler(stack.pid("controller"))

    def one(_):
        started = time.perf_counter()
        status, record = stack.invoke("pipe-" + kind, {"size": size})
        elapsed = time.perf_counter() - started
        result = record.get("response", {}).get("result", {}) if isinstance(record, dict) else {}
        ok = status == 200 and result.get("len") == size
        return {"seconds": elapsed, "ok": ok, "error": None if ok else str(result.get("error", record))[:200]}
    with ThreadPoolExecutor(k) as pool:
        pipelines = list(pool.map(one, range(k)))
    controller_cpu = cpu.cpu() - cpu.start_cpu
    kafka.quiet()
    return {"pipelines": pipelines, "kafkaBytes": kafka.window(start), "controllerCpu": controller_cpu}


def one_run(stack, kafka, index):
    wb.log("run %d" % index)
    out = {}
    for k in CONCURRENCY:
        for kind in KINDS:  # K warm containers per component before anything is timed
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(lambda _: stack.invoke("pipe-" + kind, {"size": 10}), range(k)))
        for size in SIZES:
            if (k, size) in SKIP:
                continue

            def measure(kind, _trial):
                result = configuration(stack, kafka, kind, k, size)
                good = [p["seconds"] for p in result["pipelines"] if p["ok"]]
                wb.log("  K=%d %s %s: %d/%d ok, p50 %s, Kafka %.1f KB, controller %.2f s CPU" % (
                    k, wb.fmt_bytes(size), kind, len(good), k, wb.fmt_seconds(wb.median(good)), result["kafkaBytes"] / 1e3,
                    result["controllerCpu"]))
                return result
            out["%d/%d" % (k, size)] = wb.interleave(KINDS, TRIALS, measure)
    return out


def main():
    runs = []
    with wb.Stack("pipelines", user_memory="10240 MB") as stack:
        for name, code in (("make", MAKE), ("pass", PASS), ("summarize", SUMMARIZE)):
            stack.put_action(name, code, memory=384, timeout=120_000)
        for kind in KINDS:
            body = {"exec": {"kind": "sequence", "components": ["/_/make", "/_/pass", "/_/summarize"]}, "limits": {"timeout": 120_000}}
            if kind == "p2p":
                body["annotations"] = [{"key": "p2p", "value": True}]
            status, reply = stack.request("PUT", "/namespaces/_/actions/pipe-%s?overwrite=true" % kind, body)
            if status != 200:
                raise RuntimeError("cannot create pipe-%s: %s" % (kind, reply))
        kafka = KafkaBytes(stack)
        try:
            for kind in KINDS:  # warm containers and the overlay
                stack.invoke("pipe-" + kind, {"size": 10})
            for index in range(1, RUNS + 1):
                runs.append(one_run(stack, kafka, index))
        finally:
            kafka.close()
    report(runs)


def summarize(trials):
    """(p50 seconds of the successful pipelines, ok count, total, Kafka KB per pipeline, controller CPU s per pipeline, an error)."""
    pipelines = [p for t in trials for p in t["pipelines"]]
    good = [p["seconds"] for p in pipelines if p["ok"]]
    errors = [p["error"] for p in pipelines if not p["ok"]]
    count = max(1, len(pipelines))
    return (wb.median(good), len(good), len(pipelines), sum(t["kafkaBytes"] for t in trials) / count / 1e3,
            sum(t["controllerCpu"] for t in trials) / count, errors[0] if errors else None)


def report(runs):
    rows, md_rows, notes, failures = [], [], [], {}
    for key in runs[0]:
        k, size = (int(x) for x in key.split("/"))
        medians = []
        for index, run in enumerate(runs, 1):
            p2p, classic = summarize(run[key]["p2p"]), summarize(run[key]["classic"])
            ratio = wb.ratio([wb.median([p["seconds"] for p in t["pipelines"] if p["ok"]]) for t in run[key]["classic"]],
                             [wb.median([p["seconds"] for p in t["pipelines"] if p["ok"]]) for t in run[key]["p2p"]])
            medians.append((p2p[0], classic[0]))
            rows.append([index, k, size, p2p[0], p2p[1], p2p[2], p2p[3], p2p[4], classic[0], classic[1], classic[2], classic[3], classic[4]])
            md_rows.append(["%d × %s (run %d)" % (k, wb.fmt_bytes(size), index),
                            "%s (%d/%d)" % (wb.fmt_seconds(p2p[0]), p2p[1], p2p[2]), "%.1f KB" % p2p[3], "%.3f s" % p2p[4],
                            "%s (%d/%d)" % (wb.fmt_seconds(classic[0]), classic[1], classic[2]) if classic[1] else "fails (0/%d)" % classic[2],
                            "%.1f KB" % classic[3], "%.3f s" % classic[4], wb.fmt_ratio_spread(ratio)])
            if classic[5] and size not in failures:
                failures[size] = classic[5]
        if len(medians) == 2:
            for position, label in ((0, "p2p"), (1, "classic")):
                if wb.disagree(medians[0][position], medians[1][position]):
                    notes.append("%d × %s %s: %s vs %s" % (k, wb.fmt_bytes(size), label, wb.fmt_seconds(medians[0][position]),
                                                            wb.fmt_seconds(medians[1][position])))
    wb.write_csv("pipelines", ["run", "pipelines", "bytes", "p2p_p50_s", "p2p_ok", "p2p_n", "p2p_kafka_kb_per_pipeline",
                               "p2p_controller_cpu_s_per_pipeline", "classic_p50_s", "classic_ok", "classic_n",
                               "classic_kafka_kb_per_pipeline", "classic_controller_cpu_s_per_pipeline"], rows)
    path = wb.save("pipelines", {"runs": runs, "sizes": SIZES, "concurrency": CONCURRENCY, "skipped": sorted(SKIP)})
    info = __import__("json").load(open(path))["machine"]
    smallest = min(failures) if failures else None
    md = ["Machine: %s. Raw data: `docs/benchmarks/pipelines.json`, `pipelines.csv`." % wb.machine_line(info), "",
          "K concurrent blocking invokes of a three-component sequence (make → pass → summarize, 384 MB each) whose "
          "intermediate result is a JSON object holding a string of the given size; %d trials per configuration, p2p and "
          "classic alternating. Time: median end-to-end of the successful pipelines (ok/total). Kafka: bytes written to all "
          "of the platform's topics per pipeline, less the invokers' idle heartbeats (± about 1 KB). Controller: its CPU seconds per pipeline. classic/p2p: median of the "
          "per-trial ratios of the median times (spread in brackets). Not run: %s." % (
              TRIALS, ", ".join("%d × %s" % (k, wb.fmt_bytes(s)) for k, s in sorted(SKIP))), "",
          wb.table(["pipelines × payload", "p2p", "p2p Kafka", "p2p controller CPU", "classic", "classic Kafka",
                    "classic controller CPU", "classic / p2p"], md_rows), "",
          ("The classic sequence fails from %s on: %s" % (wb.fmt_bytes(smallest), failures[smallest])) if smallest else
          "The classic sequence did not fail.", "",
          "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere")]
    wb.update_doc("pipelines", "\n".join(md))


if __name__ == "__main__":
    wb.run_benchmark(main)
