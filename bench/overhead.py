"""Benchmark 2, platform overhead (the paper's Fig. 6): 1..64 concurrent invocations of a CPU-bound
action, cold and warm, with the overlay feature off (`whisk-invoker --no-overlay`) and on, on the
same platform (a fresh one, broker included, for each concurrency). Every invocation carries an instance ID, so with the feature on each one also gets
its map entry added and removed. Wait, init and run times come from the activation records; the
end-to-end latency is the client's.

Off and on are interleaved trial by trial at every concurrency (the invokers restart with the other
flags between them): a trial is one cold burst of a fresh action and three warm bursts. Every point
gets at least 20 cold starts per mode and run (issue 12: ≥ 20 samples per point), so low
concurrencies run more trials (20 at 1, 10 at 2, 5 at 4, 3 at 8), and at least 2. The on/off
ratio is the median of the per-trial ratios of the p50 latencies, with its spread. The whole plan
runs twice; docs/benchmarks.md marks where the runs disagree by more than 25 %.

    scripts/bench overhead

WHISK_BENCH_SETTING=user measures the platform as it ships instead (`--prewarm 1`: stem cells
per kind, and with the overlay per recently active namespace, each sized to its largest recent
burst of cold starts): a job run again with new code. Before each trial's cold burst the action's
previous revision had a cold burst of the same size and the stem cells it leads to have been made;
the measured cold burst is the new revision's (its containers need `/init` with the new code; the
balancer sends it to the same home invoker). Its tables go to `<!-- bench:overhead-user -->`.

    WHISK_BENCH_SETTING=user scripts/bench overhead
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

CONCURRENCY = [int(c) for c in os.environ.get("WHISK_BENCH_CONCURRENCY", "1,2,4,8,16,32,64").split(",")]
WARM_ROUNDS = 3
TRIALS = int(os.environ.get("WHISK_BENCH_TRIALS", "2"))  # at least, per point
MIN_SAMPLES = int(os.environ.get("WHISK_BENCH_MIN_SAMPLES", "20"))  # cold starts per point, mode and run


def trials(concurrency):
    return max(TRIALS, -(-MIN_SAMPLES // concurrency))
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
# "user", as for benchmark 10: the platform as users run it (its default stem cells). Checked in
# main(): platform_probes imports this module whatever the setting its own benchmarks take.
SETTING = os.environ.get("WHISK_BENCH_SETTING", "worst")
NAME = "overhead" if SETTING == "worst" else "overhead-user"
SETTING_ARGS = [] if SETTING == "worst" else ["--prewarm", "1"]
MODES = {"off": ["--no-overlay"] + SETTING_ARGS, "on": SETTING_ARGS}
CODE = '''
def main(args):
    n = int(args.get("n", 200000))
    total = 0
    for i in range(n):
        total += i * i % 7
    return {"total": total}
'''


def burst(stack, name, concurrency, tag):
    def one(i):
        started = time.perf_counter()
        status, record = stack.invoke(name, {"n": 200000}, instance="%s-%d" % (tag, i))
        latency = time.perf_counter() - started
        ok = status == 200 and record.get("response", {}).get("success")
        wait = wb.annotation(record, "waitTime")
        init = wb.annotation(record, "initTime")
        duration = record.get("duration")
        run = None if duration is None else duration - (init or 0)
        return {"ok": bool(ok), "latency": latency, "wait": wait, "init": init, "run": run, "status": status,
                "error": None if ok else str(record.get("response", record))[:300]}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(concurrency)))


STEM_CELL_WAIT_MS = 150  # a cold start that waited less found a stem cell (making one takes 0.3 s and more)


def previous_revision(stack, name, c, tag):
    """The action's previous revision cold-started `c` times at once, then the stem cells that
    burst leads to made: until the platform's container count has not changed for 3 s (at most
    90 s)."""
    stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                  {"exec": {"kind": "python:3", "code": CODE + "# previous revision\n"}, "limits": {"memory": 128}})
    failed = [s for s in burst(stack, name, c, tag) if not s["ok"]]
    if failed:
        wb.log("previous revision of %s: %d of %d failed (%s): its stem cells may be fewer" % (name, len(failed), c, failed[0]["error"]))
    deadline, last, since = time.monotonic() + 90, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(stack.container_ids(check=False))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= 3:
            break
        time.sleep(0.25)


def one_run(index):
    """{concurrency: {"off"|"on": [{"cold": [samples], "warm": [samples]} per trial]}}; each
    concurrency on a fresh platform (broker included): Tansu's memory engine costs more per
    message the more its partition holds (§10, item 36), and a run's last points met ~20,000
    messages that its first ones did not."""
    out = {}
    for c in CONCURRENCY:
        with wb.Stack(NAME, user_memory="16384 MB") as stack:
            out[c] = one_point(stack, index, c)
    return out


def one_point(stack, index, c):
    def trial(mode, number):
        stack.restart_invokers(MODES[mode])
        name = "cpu-%d-%s-%d-%d" % (index, mode, c, number)
        tag = "r%d%s%dt%d" % (index, mode, c, number)
        if SETTING == "user":
            previous_revision(stack, name, c, "p" + tag)
        stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                      {"exec": {"kind": "python:3", "code": CODE}, "limits": {"memory": 128}})
        cold = burst(stack, name, c, "c" + tag)
        warm = []
        for r in range(WARM_ROUNDS):
            warm += burst(stack, name, c, "w%s-%d" % (tag, r))
        return {"cold": cold, "warm": warm}
    point = wb.interleave(list(MODES), trials(c), trial)
    for phase in ("cold", "warm"):
        ratio = trial_ratio(point, phase)
        failures = sum(not s["ok"] for mode in MODES for t in point[mode] for s in t[phase])
        wb.log("run %d c=%d %s on/off %s%s" % (index, c, phase, wb.fmt_ratio_spread(ratio), " (%d failed)" % failures if failures else ""))
    return point


def main():
    if SETTING not in ("worst", "user"):
        sys.exit("WHISK_BENCH_SETTING must be worst or user")
    # 128 MB actions and room for every container of a trial, so no eviction lands in a cold start.
    report([one_run(index) for index in range(1, RUNS + 1)])


def stem_cell_starts(runs, c, mode):
    """The share of the cold bursts' activations that found a stem cell, over all runs."""
    cold = [s for run in runs for t in run[c][mode] for s in t["cold"] if s["ok"] and s["wait"] is not None]
    return "%.0f %%" % (100.0 * sum(s["wait"] < STEM_CELL_WAIT_MS for s in cold) / len(cold)) if cold else "-"


def pooled(trials, phase):
    return [s for t in trials for s in t[phase]]


def trial_ratio(point, phase):
    """Median over trials of p50(on) / p50(off), the trials being interleaved off, on, off, on."""
    return wb.ratio([stat(t[phase], "latency") for t in point["on"]], [stat(t[phase], "latency") for t in point["off"]])


def stat(items, key, p=50):
    values = [s[key] for s in items if s["ok"] and s[key] is not None]
    return wb.percentile(values, p) if values else None


def report(runs):
    rows, md, notes = [], {"cold": [], "warm": []}, []
    ms = lambda v: "-" if v is None else "%.0f" % v  # noqa: E731
    for phase in ("cold", "warm"):
        for c in CONCURRENCY:
            medians = []
            for index, run in enumerate(runs, 1):
                off, on = pooled(run[c]["off"], phase), pooled(run[c]["on"], phase)
                for mode, items in (("off", off), ("on", on)):
                    rows.append([index, phase, c, mode, len(items), sum(not s["ok"] for s in items),
                                 stat(items, "latency"), stat(items, "latency", 95),
                                 stat(items, "wait"), stat(items, "init"), stat(items, "run")])
                ratio = trial_ratio(run[c], phase)
                medians.append(ratio["median"] if ratio else None)
                md[phase].append(["%d (run %d)" % (c, index), "%d / %d" % (sum(not s["ok"] for s in off), sum(not s["ok"] for s in on)),
                                  wb.fmt_seconds(stat(off, "latency")), wb.fmt_seconds(stat(on, "latency")), wb.fmt_ratio_spread(ratio),
                                  "%s / %s" % (ms(stat(off, "wait")), ms(stat(on, "wait"))),
                                  "%s / %s" % (ms(stat(off, "init")), ms(stat(on, "init"))),
                                  "%s / %s" % (ms(stat(off, "run")), ms(stat(on, "run")))])
            if len(medians) == 2 and wb.disagree(*medians):
                notes.append("%s c=%d on/off %s vs %s" % (phase, c, wb.fmt_ratio(medians[0]), wb.fmt_ratio(medians[1])))
    wb.write_csv(NAME, ["run", "phase", "concurrency", "overlay", "n", "failures", "latency_p50_s", "latency_p95_s",
                              "wait_p50_ms", "init_p50_ms", "run_p50_ms"], rows)
    path = wb.save(NAME, {"runs": runs, "concurrency": CONCURRENCY, "setting": SETTING})
    info = json.load(open(path))["machine"]

    def totals(run, phase):
        off = [s["latency"] for c in CONCURRENCY for s in pooled(run[c]["off"], phase) if s["ok"]]
        on = [s["latency"] for c in CONCURRENCY for s in pooled(run[c]["on"], phase) if s["ok"]]
        return sum(on) / sum(off) if off and on else None

    header = ["concurrent", "failures off / on", "latency p50 off", "latency p50 on", "on / off (per trial)", "wait ms p50 off / on",
              "init ms p50 off / on", "run ms p50 off / on"]
    setting = ("`--prewarm 0`: no stem cells" if SETTING == "worst" else
               "`--prewarm 1`: the stem cells the platform ships with; the cold burst is a new revision of an action whose "
               "previous revision had a cold burst of the same size just before, the stem cells that led to made (cold starts "
               "that found one, waiting < %d ms, off / on: %s)" % (STEM_CELL_WAIT_MS, ", ".join(
                   "%d: %s" % (c, " / ".join(stem_cell_starts(runs, c, mode) for mode in MODES)) for c in CONCURRENCY)))
    text = ["Machine: %s. Per point and run: %s trials (at 1, 2, 4, ... concurrent; at least %d cold starts per mode), off and on "
            "interleaved (invokers restarted between them, %s; each concurrency on a fresh platform, broker included), each trial one "
            "cold burst of a fresh CPU-bound Python action (128 MB) and %d warm bursts; 2 invokers. on / off is the median of the "
            "per-trial ratios of p50 latency (spread in brackets). Raw data: `docs/benchmarks/%s.json`, `%s.csv`; "
            "plot `%s.png`." % (wb.machine_line(info), ", ".join(str(trials(c)) for c in CONCURRENCY), MIN_SAMPLES, setting, WARM_ROUNDS,
                                NAME, NAME, NAME),
            "", "Total client latency over all points, overlay on / off: cold %s, warm %s." % (
                " and ".join(wb.fmt_ratio(totals(run, "cold")) for run in runs), " and ".join(wb.fmt_ratio(totals(run, "warm")) for run in runs)),
            "", "Cold:", "", wb.table(header, md["cold"]), "", "Warm:", "", wb.table(header, md["warm"]),
            "", "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"),
            "", "![%s](benchmarks/%s.png)" % (NAME, NAME)]
    wb.update_doc(NAME, "\n".join(text))
    plt = wb.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, phase in zip(axes, ("cold", "warm")):
        for index, run in enumerate(runs, 1):
            for mode, style in (("off", "o--"), ("on", "s-")):
                axis.plot(CONCURRENCY, [stat(pooled(run[c][mode], phase), "latency") for c in CONCURRENCY], style,
                          label="overlay %s, run %d" % (mode, index))
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent invocations")
        axis.set_ylabel("client latency p50 (s)")
        axis.set_title("%s starts" % phase)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(wb.RESULTS, NAME + ".png"), dpi=110)


if __name__ == "__main__":
    wb.run_benchmark(main)
