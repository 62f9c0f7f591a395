"""Probes behind benchmark 10's prose (docs/benchmarks.md §10), kept so their numbers can be
measured again. Not part of `scripts/bench`: they answer one question each and write nothing.

    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py brokergrowth   # ~4 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py stemcold       # ~3 min
    . scripts/lib.sh && .venv/bin/python bench/platform_probes.py burst          # ~8 min

- brokergrowth: one platform kept running; per step, 50 invokes at one client (p50) and Tansu's
  idle CPU over 5 s, then 3,200 invokes at 16 clients. Shows the memory engine slowing as its
  partitions fill.
- stemcold: single cold starts of fresh actions with the invoker's default stem cells
  (`--prewarm 1`), overlay off and on interleaved, each trial on a fresh platform.
- burst: benchmark 10's first and steady pass of the no-op (overlay on, `--prewarm 0`) at 4, 16
  and 64 clients, with the invoker letting activations wait for a busy container of their action
  (the default) and without (`--no-wait-for-busy-containers`: a cold start each), interleaved,
  each trial on a fresh platform; and how many cold starts each pass had.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    results = {"off": [], "on": []}
    for _ in range(trials):
        for mode in ("off", "on"):
            with wb.Stack("stemcold", invoker_args=pc.MODES[mode] + ["--prewarm", "1"], user_memory="10240 MB") as stack:
                stack.request("PUT", "/namespaces/_/actions/warmup?overwrite=true", NOOP)
                pc.closed_loop(stack, "warmup", 1, 2)  # the namespace is now recently active
                for i in range(per_trial):
                    time.sleep(4)  # time for the pool to replace the stem cell it gave away
                    stack.request("PUT", "/namespaces/_/actions/cold%d?overwrite=true" % i, NOOP)
                    _, samples = pc.closed_loop(stack, "cold%d" % i, 1, 1)
                    results[mode].append(samples[0]["latency"])
    for mode, latencies in results.items():
        print("overlay %s: %d cold starts, p50 %s, p90 %s" % (mode, len(latencies), wb.fmt_seconds(wb.percentile(latencies, 50)),
                                                           wb.fmt_seconds(wb.percentile(latencies, 90))))


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


if __name__ == "__main__":
    probes = {"brokergrowth": brokergrowth, "stemcold": stemcold, "burst": burst}
    if len(sys.argv) != 2 or sys.argv[1] not in probes:
        sys.exit("usage: platform_probes.py %s" % "|".join(probes))
    wb.run_benchmark(probes[sys.argv[1]])
