"""Benchmark 1, message passing (the paper's Fig. 7/8): two instances on different invokers exchange
64 B round trips (1..10,000) and single messages of 64 B..128 MiB, over the SDK on the overlay,
raw TCP between the same containers, Redis with BLPOP (these three interleaved trial by trial), and
Redis polled every 100 ms. The plan runs twice.

    bench/run messaging
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402

REDIS_IMAGE = "whiskmesh/redis:bookworm"
TRANSPORTS = ["tcp", "sdk", "redis", "redis-poll"]
INTERLEAVED = ["tcp", "sdk", "redis"]
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
COUNTS = [(1, 200), (10, 50), (100, 20), (1000, 5), (10000, 3)]
SIZES = [(64, 200), (1 << 10, 200), (16 << 10, 100), (256 << 10, 30), (4 << 20, 10), (32 << 20, 5), (128 << 20, 5)]
# Polling every 100 ms makes a round trip cost ~100 ms: 10,000 of them would take ~17 minutes.
POLL_COUNTS = [(1, 10), (10, 5), (100, 3)]
POLL_SIZES = [(size, 3) for size, _ in SIZES]


def plan(transport):
    counts, sizes = (POLL_COUNTS, POLL_SIZES) if transport == "redis-poll" else (COUNTS, SIZES)
    return ([{"kind": "count", "n": n, "trials": t} for n, t in counts] +
            [{"kind": "size", "bytes": b, "trials": t} for b, t in sizes])


def exchange(stack, transports, points, redis_address=None):
    """One pair of activations that runs `points` over every transport of `transports`, interleaved
    trial by trial; returns role a's result ({"results": {transport: points}, "placement"})."""
    key = "bench-%d" % time.monotonic_ns()
    common = {"transports": transports, "plan": points, "redis": redis_address, "key": key}
    status_b, b = stack.invoke("right", dict(common, role="b", peer="mp-a"), blocking=False, instance="mp-b")
    status_a, a = stack.invoke("left", dict(common, role="a", peer="mp-b"), blocking=False, instance="mp-a")
    if status_a != 202 or status_b != 202:
        raise RuntimeError("invoke failed: %s %s / %s %s" % (status_a, a, status_b, b))
    record_a = stack.wait_activation(a["activationId"])
    record_b = stack.wait_activation(b["activationId"])
    for record in (record_a, record_b):
        result = record["response"]["result"]
        if not record["response"]["success"] or "error" in result:
            raise RuntimeError("%s exchange failed: %s" % (transports, result))
    result = record_a["response"]["result"]
    if result["placement"].get("mp-a") == result["placement"].get("mp-b"):
        raise RuntimeError("both instances ran on invoker %s: the benchmark needs two" % result["placement"]["mp-a"])
    return result


def start_redis(stack):
    network = stack.overlay()
    if network is None:
        raise RuntimeError("the namespace overlay does not exist yet")
    name = "wmbench-redis-%s" % stack.run
    wb.docker("run", "-d", "--name", name, "--label", "%s=%s" % (wb.LABEL, stack.run), "--network", network,
              REDIS_IMAGE, "redis-server", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no")
    ip = wb.docker("inspect", "--format", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % network, name)
    return "%s:6379" % ip


def main():
    runs = []
    with wb.Stack("messaging") as stack:
        code = wb.action_code("messaging.py")
        for name in ("left", "right"):
            stack.put_action(name, code, memory=1024)
        # Warm both containers (and create the namespace's overlay) with a tiny exchange.
        exchange(stack, ["sdk"], [{"kind": "count", "n": 10, "trials": 1}])
        redis_address = start_redis(stack)
        wb.log("redis at %s on %s" % (redis_address, stack.overlay()))
        for index in range(1, RUNS + 1):
            wb.log("run %d: %s interleaved" % (index, ", ".join(INTERLEAVED)))
            started = time.time()
            result = exchange(stack, INTERLEAVED, plan("sdk"), redis_address)
            wb.log("  %.1f s; redis-poll" % (time.time() - started))
            poll = exchange(stack, ["redis-poll"], plan("redis-poll"), redis_address)
            runs.append({"results": dict(result["results"], **poll["results"]), "placement": result["placement"]})
    report(runs)


def samples(results, transport, kind):
    """{x: [seconds of each trial]} of one transport and kind."""
    out = {}
    for point in results.get(transport, []):
        if point["kind"] == kind:
            out[point["n"] if kind == "count" else point["bytes"]] = point["seconds"]
    return out


def report(runs):
    rows, md_rows, notes = [], {"count": [], "size": []}, []
    per_run = []
    for index, run in enumerate(runs, 1):
        results = run["results"]
        figures = {}
        for kind in ("count", "size"):
            series = {t: samples(results, t, kind) for t in TRANSPORTS}
            for x in sorted(series["sdk"]):
                p = {t: wb.summary(series[t][x]) if series[t].get(x) else None for t in TRANSPORTS}
                for transport in TRANSPORTS:
                    if p[transport]:
                        rows.append([index, transport, kind, x, p[transport]["n"], p[transport]["p50"], p[transport]["p95"]])
                redis_sdk = wb.ratio(series["redis"].get(x, []), series["sdk"][x])
                sdk_tcp = wb.ratio(series["sdk"][x], series["tcp"].get(x, []))
                poll_sdk = p["redis-poll"]["p50"] / p["sdk"]["p50"] if p["redis-poll"] else None
                figures[(kind, x)] = (p["sdk"]["p50"], redis_sdk and redis_sdk["median"], sdk_tcp and sdk_tcp["median"])
                label = ("%d × 64 B" % x) if kind == "count" else wb.fmt_bytes(x)
                cell = lambda t: "%s / %s" % (wb.fmt_seconds(p[t]["p50"]), wb.fmt_seconds(p[t]["p95"])) if p[t] else "not run"  # noqa: E731
                md_rows[kind].append(["%s (run %d)" % (label, index), cell("sdk"), cell("tcp"), cell("redis"), cell("redis-poll"),
                                      wb.fmt_ratio_spread(redis_sdk), wb.fmt_ratio(poll_sdk), wb.fmt_ratio_spread(sdk_tcp)])
        per_run.append(figures)
    if len(per_run) == 2:
        for key in per_run[0]:
            label = ("%d × 64 B" % key[1]) if key[0] == "count" else wb.fmt_bytes(key[1])
            for position, name in ((0, "SDK p50"), (1, "Redis / SDK"), (2, "SDK / TCP")):
                a, b = per_run[0][key][position], per_run[1].get(key, (None,) * 3)[position]
                if wb.disagree(a, b):
                    notes.append("%s %s: %s vs %s" % (label, name, *(wb.fmt_seconds(v) if position == 0 else "%.2f×" % v for v in (a, b))))
    wb.write_csv("messaging", ["run", "transport", "kind", "x", "trials", "p50_seconds", "p95_seconds"], rows)
    path = wb.save("messaging", {"runs": runs})
    info = json.load(open(path))["machine"]
    header = ["", "SDK p50 / p95", "raw TCP", "Redis BLPOP", "Redis 100 ms poll", "Redis / SDK", "poll / SDK", "SDK / TCP"]
    md = ["Machine: %s. Raw data: `docs/benchmarks/messaging.json`, `messaging.csv`; plot `messaging.png` (run 1)." % wb.machine_line(info),
          "", "SDK, raw TCP and Redis BLPOP run interleaved, trial by trial, between the same two instances on two invokers; "
          "Redis / SDK and SDK / TCP are the medians of the per-trial ratios (their spread in brackets). The 100 ms poll runs "
          "after them (a round trip costs a poll period; interleaving it would only slow the others down); poll / SDK is a "
          "ratio of medians. The whole plan ran twice.",
          "", "Round trips of 64 B (time for the whole series):", "", wb.table(header, md_rows["count"]),
          "", "One message of the given size, then a 1-byte reply:", "", wb.table(header, md_rows["size"]),
          "", "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere"),
          "", "![messaging](benchmarks/messaging.png)"]
    wb.update_doc("messaging", "\n".join(md))
    plot(runs[0]["results"])


def points(results, transport, kind):
    return {x: wb.summary(values) for x, values in samples(results, transport, kind).items() if values}


def plot(results):
    plt = wb.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, kind, xlabel in ((axes[0], "count", "64 B round trips"), (axes[1], "size", "message size (bytes)")):
        for transport in TRANSPORTS:
            data = points(results, transport, kind)
            if data:
                xs = sorted(data)
                axis.plot(xs, [data[x]["p50"] for x in xs], marker="o", label=transport)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("seconds (p50)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    axes[0].set_title("Fig. 7-style: message count")
    axes[1].set_title("Fig. 8-style: message size")
    figure.tight_layout()
    figure.savefig(os.path.join(wb.RESULTS, "messaging.png"), dpi=110)


if __name__ == "__main__":
    wb.run_benchmark(main)
