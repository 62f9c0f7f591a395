"""Benchmark 2, platform overhead (the paper's Fig. 6): 1..64 concurrent invocations of a CPU-bound
action, cold and warm, with the overlay feature off (`whisk-invoker --no-overlay`) and on, on the
same platform. Every invocation carries an instance ID, so with the feature on each one also gets
its map entry added and removed. Wait, init and run times come from the activation records; the
end-to-end latency is the client's. Passes alternate off/on to spread drift over both.

    scripts/bench overhead
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

CONCURRENCY = [1, 2, 4, 8, 16, 32, 64]
WARM_ROUNDS = 3
PASSES = 2
MODES = {"off": ["--no-overlay"], "on": []}
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


def main():
    samples = {mode: {"cold": {c: [] for c in CONCURRENCY}, "warm": {c: [] for c in CONCURRENCY}} for mode in MODES}
    # 128 MB actions and room for every container of a pass, so no eviction lands in a cold start.
    with wb.Stack("overhead", user_memory="16384 MB") as stack:
        for npass in range(PASSES):
            for mode, flags in MODES.items():
                stack.restart_invokers(flags)
                for c in CONCURRENCY:
                    name = "cpu-%s-%d-%d" % (mode, npass, c)
                    stack.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name,
                                  {"exec": {"kind": "python:3", "code": CODE}, "limits": {"memory": 128}})
                    cold = burst(stack, name, c, "c%d%s%d" % (npass, mode, c))
                    samples[mode]["cold"][c] += cold
                    for r in range(WARM_ROUNDS):
                        samples[mode]["warm"][c] += burst(stack, name, c, "w%d%s%d-%d" % (npass, mode, c, r))
                    failures = sum(not s["ok"] for s in cold)
                    wb.log("pass %d overlay %s c=%d cold p50 %.3f s%s" % (npass, mode, c, wb.percentile([s["latency"] for s in cold], 50),
                                                                       " (%d failed)" % failures if failures else ""))
    report(samples)


def stat(items, key, p=50):
    values = [s[key] for s in items if s["ok"] and s[key] is not None]
    return wb.percentile(values, p) if values else None


def report(samples):
    rows, md = [], {"cold": [], "warm": []}
    for phase in ("cold", "warm"):
        for c in CONCURRENCY:
            off, on = samples["off"][phase][c], samples["on"][phase][c]
            for mode, items in (("off", off), ("on", on)):
                rows.append([phase, c, mode, len(items), sum(not s["ok"] for s in items),
                             stat(items, "latency"), stat(items, "latency", 95),
                             stat(items, "wait"), stat(items, "init"), stat(items, "run")])
            lat_off, lat_on = stat(off, "latency"), stat(on, "latency")
            ms = lambda v: "-" if v is None else "%.0f" % v  # noqa: E731
            md[phase].append([c, "%d / %d" % (sum(not s["ok"] for s in off), sum(not s["ok"] for s in on)),
                              wb.fmt_seconds(lat_off), wb.fmt_seconds(lat_on), wb.fmt_ratio(lat_on / lat_off if lat_off and lat_on else None),
                              "%s / %s" % (ms(stat(off, "wait")), ms(stat(on, "wait"))),
                              "%s / %s" % (ms(stat(off, "init")), ms(stat(on, "init"))),
                              "%s / %s" % (ms(stat(off, "run")), ms(stat(on, "run")))])
    wb.write_csv("overhead", ["phase", "concurrency", "overlay", "n", "failures", "latency_p50_s", "latency_p95_s",
                              "wait_p50_ms", "init_p50_ms", "run_p50_ms"], rows)
    path = wb.save("overhead", {"samples": samples})
    info = json.load(open(path))["machine"]

    def totals(phase):
        off = [s["latency"] for c in CONCURRENCY for s in samples["off"][phase][c] if s["ok"]]
        on = [s["latency"] for c in CONCURRENCY for s in samples["on"][phase][c] if s["ok"]]
        return sum(on) / sum(off) if off and on else None

    header = ["concurrent", "failures off / on", "latency p50 off", "latency p50 on", "on / off", "wait ms p50 off / on",
              "init ms p50 off / on", "run ms p50 off / on"]
    text = ["Machine: %s. %d passes × (1 cold + %d warm rounds) per point, CPU-bound Python action (128 MB), "
            "2 invokers. Raw data: `docs/benchmarks/overhead.json`, `overhead.csv`; plot `overhead.png`." % (wb.machine_line(info), PASSES, WARM_ROUNDS),
            "", "Total client latency over all points, overlay on / off: cold %s, warm %s." % (wb.fmt_ratio(totals("cold")), wb.fmt_ratio(totals("warm"))),
            "", "Cold:", "", wb.table(header, md["cold"]), "", "Warm:", "", wb.table(header, md["warm"]),
            "", "![overhead](benchmarks/overhead.png)"]
    wb.update_doc("overhead", "\n".join(text))
    plt = wb.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, phase in zip(axes, ("cold", "warm")):
        for mode, style in (("off", "o--"), ("on", "s-")):
            axis.plot(CONCURRENCY, [stat(samples[mode][phase][c], "latency") for c in CONCURRENCY], style, label="overlay %s" % mode)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent invocations")
        axis.set_ylabel("client latency p50 (s)")
        axis.set_title("%s starts" % phase)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(wb.RESULTS, "overhead.png"), dpi=110)


if __name__ == "__main__":
    wb.run_benchmark(main)
