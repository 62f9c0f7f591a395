"""Benchmark 3, address-map propagation: from an activation's start (its record's `start`) to the
moment a watcher's map file holds the activation's instance entry, for a watcher on the same invoker
and one on the other invoker; and from the activation's end (start + duration) to the moment the
entry is gone from those files. Watchers poll their file every millisecond. The whole plan runs
twice (fresh watchers and probe action each time); docs/benchmarks.md shows both runs and marks
where they disagree by more than 25 %.

    scripts/bench propagation
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

TRIALS = 220
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
PROBE = '''
import time
def main(args):
    time.sleep(float(args.get("sleep", 0.05)))
    return {}
'''


def measure(stack, watchers, probe, trials):
    """Runs a watcher action per name in `watchers` (instance "watch-NAME") and `trials` probe
    activations of action `probe`, one after another; returns (probes, the watchers' results)."""
    stack.put_action(probe, PROBE, timeout=10_000)
    # Creates the overlay and warms the probe's container.
    stack.invoke(probe, {"sleep": 0}, instance="warmup")
    with ThreadPoolExecutor(max_workers=len(watchers)) as pool:
        futures = [pool.submit(stack.invoke, name, {"seconds": 280}, True, "watch-" + name) for name in watchers]
        wanted = {"watch-" + name for name in watchers}
        deadline = time.time() + 60
        while time.time() < deadline:
            current = {i["id"] for i in stack.get("/namespaces/_/addressmap").get("instances", [])}
            if wanted <= current:
                break
            time.sleep(0.1)
        time.sleep(1)
        probes = []
        for i in range(trials):
            status, record = stack.invoke(probe, {"sleep": 0.05}, instance="probe-%d" % i)
            if status != 200 or not record["response"]["success"]:
                raise RuntimeError("probe %d failed: %s %s" % (i, status, record))
            probes.append({"id": "probe-%d" % i, "start": record["start"] / 1000, "end": record["end"] / 1000})
            time.sleep(0.05)
        time.sleep(2)
        stack.invoke(probe, {"sleep": 1}, instance="stop")
        results = []
        for future in futures:
            status, record = future.result()
            if status != 200 or not record["response"]["success"]:
                raise RuntimeError("watcher failed: %s" % record)
            results.append(record["response"]["result"])
    return probes, results


def classify(probes, watchers):
    """(series {"appear-same"|"appear-other"|"disappear-…": seconds}, rows, entries never seen):
    "same" when the watcher ran on the probe's invoker."""
    series = {"appear-same": [], "appear-other": [], "disappear-same": [], "disappear-other": []}
    missing = 0
    rows = []
    for probe in probes:
        for watcher in watchers:
            seen = watcher["seen"].get(probe["id"])
            if seen is None:
                missing += 1
                continue
            where = "same" if seen["invoker"] == watcher["invoker"] else "other"
            appear = seen["t"] - probe["start"]
            gone = watcher["gone"].get(probe["id"])
            disappear = None if gone is None else gone - probe["end"]
            series["appear-" + where].append(appear)
            if disappear is not None:
                series["disappear-" + where].append(disappear)
            rows.append([probe["id"], watcher["invoker"], seen["invoker"], where, appear, disappear])
    return series, rows, missing


def main():
    runs = []
    with wb.Stack("propagation") as stack:
        watch = wb.action_code("watch.py")
        for index in range(1, RUNS + 1):
            # The same names in both runs: the balancer places an action by its name, and these
            # names put the two watchers on different invokers.
            stack.put_action("left", watch, timeout=300_000)
            stack.put_action("right", watch, timeout=300_000)
            probes, results = measure(stack, ["left", "right"], "probe", TRIALS)
            runs.append({"probes": probes, "watchers": results})
            wb.log("run %d: %d probes" % (index, len(probes)))
    report(runs)


LABELS = {"appear-same": "appears, watcher on the same invoker", "appear-other": "appears, watcher on the other invoker",
          "disappear-same": "disappears, same invoker", "disappear-other": "disappears, other invoker"}


def report(runs):
    table, notes, all_rows, summaries, pooled = [], [], [], [], {}
    missing_total = []
    for index, run in enumerate(runs, 1):
        series, rows, missing = classify(run["probes"], run["watchers"])
        missing_total.append(missing)
        all_rows += [[index] + row for row in rows]
        summaries.append({k: wb.summary(v) for k, v in series.items()})
        for key, values in series.items():
            pooled.setdefault(key, []).extend(values)
    for key in LABELS:
        for index, summary in enumerate(summaries, 1):
            s = summary[key]
            table.append(["%s (run %d)" % (LABELS[key], index), s["n"], wb.fmt_seconds(s.get("p50")), wb.fmt_seconds(s.get("p99")),
                          wb.fmt_seconds(s.get("max"))])
        if len(summaries) == 2:
            for p in ("p50", "p99"):
                a, b = summaries[0][key].get(p), summaries[1][key].get(p)
                if wb.disagree(a, b):
                    notes.append("%s %s: %s vs %s" % (LABELS[key], p, wb.fmt_seconds(a), wb.fmt_seconds(b)))
    wb.write_csv("propagation", ["run", "instance", "watcher_invoker", "probe_invoker", "where", "appear_s", "disappear_s"], all_rows)
    path = wb.save("propagation", {"runs": runs, "summary": summaries})
    info = json.load(open(path))["machine"]
    text = ["Machine: %s. Per run %d probe activations (warm, 50 ms each, one after another), each seen by a watcher on each "
            "invoker; times are from the activation record's start (appear) or end (disappear) to the watcher's first "
            "read of a file with (without) the entry; the watcher polls every 1 ms and the record's times have 1 ms "
            "resolution. Entries never seen: %s. Raw data: `docs/benchmarks/propagation.json`, `propagation.csv`; plot "
            "`propagation.png` (both runs pooled)." % (wb.machine_line(info), TRIALS, " and ".join(str(m) for m in missing_total)),
            "", wb.table(["", "samples", "p50", "p99", "max"], table), "",
            "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"),
            "", "![propagation](benchmarks/propagation.png)"]
    wb.update_doc("propagation", "\n".join(text))
    wb.plot_cdf("propagation", {LABELS[key]: [v * 1000 for v in values] for key, values in pooled.items()},
                "milliseconds", "fraction of trials", "Address-map propagation (CDF)")


if __name__ == "__main__":
    wb.run_benchmark(main)
