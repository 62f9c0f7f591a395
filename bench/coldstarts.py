"""Benchmark 5, concurrent cold starts: 25, 50, 100 and 200 simultaneous invocations of a fresh
action in one namespace, each with its own instance ID (so every container is also attached to the
namespace's overlay and announced in the map). Reports failures (target 0) and latency p50/p99, plus
the wait and init times from the activation records. Invokers restart between levels, so every
level starts from an empty pool. The whole plan runs twice; docs/benchmarks.md shows both runs and
marks where they disagree by more than 25 %.

    scripts/bench coldstarts
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

LEVELS = [int(s) for s in os.environ.get("WHISK_BENCH_LEVELS", "25,50,100,200").split(",")]
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
CODE = '''
import whiskmesh
def main(args):
    return {"me": whiskmesh.my_id(), "ip": whiskmesh.my_ip()}
'''


def level(stack, n, run):
    name = "cold-%d-%d" % (run, n)
    stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                  {"exec": {"kind": "python:3", "code": CODE}, "limits": {"memory": 128, "timeout": 300000}})

    def one(i):
        started = time.perf_counter()
        try:
            status, record = stack.invoke(name, {}, instance="c%d-%d-%d" % (run, n, i))
        except Exception as error:  # a refused or broken HTTP exchange is a failure too
            return {"ok": False, "latency": time.perf_counter() - started, "error": str(error)[:300]}
        latency = time.perf_counter() - started
        response = record.get("response", {}) if isinstance(record, dict) else {}
        ok = status == 200 and response.get("success") is True and response.get("result", {}).get("ip")
        return {"ok": bool(ok), "latency": latency, "status": status, "wait": wb.annotation(record, "waitTime"),
                "init": wb.annotation(record, "initTime"), "duration": record.get("duration"),
                "error": None if ok else str(record)[:300]}

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def main():
    results = {}
    with wb.Stack("coldstarts", user_memory="32768 MB") as stack:
        for run, n in [(run, n) for run in range(1, RUNS + 1) for n in LEVELS]:
            stack.restart_invokers()
            started = time.time()
            samples = level(stack, n, run)
            results.setdefault(run, {})[n] = samples
            failures = [s for s in samples if not s["ok"]]
            wb.log("run %d, %d concurrent cold starts: %d failed, p50 %.2f s, p99 %.2f s, wall %.1f s" % (
                run, n, len(failures), wb.percentile([s["latency"] for s in samples], 50),
                wb.percentile([s["latency"] for s in samples], 99), time.time() - started))
            for failure in failures[:3]:
                wb.log("  failure: %s" % failure.get("error"))
    report(results)


def report(results):
    rows, table, notes = [], [], []
    figures = {}
    for n in LEVELS:
        for run, levels in sorted(results.items()):
            samples = levels[n]
            ok = [s for s in samples if s["ok"]]
            lat = wb.summary([s["latency"] for s in samples])
            wait = wb.summary([s["wait"] for s in ok if s.get("wait") is not None])
            init = wb.summary([s["init"] for s in ok if s.get("init") is not None])
            failures = len(samples) - len(ok)
            figures.setdefault(n, []).append(lat)
            rows.append([run, n, failures, lat["p50"], lat["p99"], lat["max"], wait.get("p50"), wait.get("p99"), init.get("p50"), init.get("p99")])
            table.append(["%d (run %d)" % (n, run), failures, wb.fmt_seconds(lat["p50"]), wb.fmt_seconds(lat["p99"]), wb.fmt_seconds(lat["max"]),
                          "%s / %s" % (wait.get("p50", "-"), wait.get("p99", "-")), "%s / %s" % (init.get("p50", "-"), init.get("p99", "-"))])
        if len(figures[n]) == 2:
            for p in ("p50", "p99"):
                a, b = figures[n][0][p], figures[n][1][p]
                if wb.disagree(a, b):
                    notes.append("%d concurrent %s: %s vs %s" % (n, p, wb.fmt_seconds(a), wb.fmt_seconds(b)))
    wb.write_csv("coldstarts", ["run", "concurrent", "failures", "latency_p50_s", "latency_p99_s", "latency_max_s",
                                "wait_p50_ms", "wait_p99_ms", "init_p50_ms", "init_p99_ms"], rows)
    path = wb.save("coldstarts", {"samples": results})
    info = json.load(open(path))["machine"]
    text = ["Machine: %s. Two invokers, each creating at most 10 containers and attaching at most 16 at a time; "
            "every invocation owns an instance ID; latency is the client's (blocking invoke). Raw data: "
            "`docs/benchmarks/coldstarts.json`, `coldstarts.csv`; plot `coldstarts.png` (run 1)." % wb.machine_line(info),
            "", wb.table(["concurrent", "failures", "latency p50", "latency p99", "max", "wait ms p50 / p99", "init ms p50 / p99"], table),
            "", "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"),
            "", "![coldstarts](benchmarks/coldstarts.png)"]
    wb.update_doc("coldstarts", "\n".join(text))
    first = results[min(results)]
    wb.plot_cdf("coldstarts", {"%d concurrent" % n: [s["latency"] for s in samples] for n, samples in first.items()},
                "seconds (client latency)", "fraction of invocations", "Concurrent cold starts (CDF)")


if __name__ == "__main__":
    wb.run_benchmark(main)
