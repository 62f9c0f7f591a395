"""Benchmark 1, message passing (the paper's Fig. 7/8): two instances on different invokers exchange
64 B round trips (1..10,000) and single messages of 64 B..128 MiB, over the SDK on the overlay,
raw TCP between the same containers, Redis with BLPOP, and Redis polled every 100 ms.

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
COUNTS = [(1, 200), (10, 50), (100, 20), (1000, 5), (10000, 3)]
SIZES = [(64, 200), (1 << 10, 200), (16 << 10, 100), (256 << 10, 30), (4 << 20, 10), (32 << 20, 5), (128 << 20, 5)]
# Polling every 100 ms makes a round trip cost ~100 ms: 10,000 of them would take ~17 minutes.
POLL_COUNTS = [(1, 10), (10, 5), (100, 3)]
POLL_SIZES = [(size, 3) for size, _ in SIZES]


def plan(transport):
    counts, sizes = (POLL_COUNTS, POLL_SIZES) if transport == "redis-poll" else (COUNTS, SIZES)
    return ([{"kind": "count", "n": n, "trials": t} for n, t in counts] +
            [{"kind": "size", "bytes": b, "trials": t} for b, t in sizes])


def exchange(stack, transport, points, redis_address=None):
    key = "bench-%s-%d" % (transport, time.monotonic_ns())
    common = {"transport": transport, "plan": points, "redis": redis_address, "key": key}
    status_b, b = stack.invoke("right", dict(common, role="b", peer="mp-a"), blocking=False, instance="mp-b")
    status_a, a = stack.invoke("left", dict(common, role="a", peer="mp-b"), blocking=False, instance="mp-a")
    if status_a != 202 or status_b != 202:
        raise RuntimeError("invoke failed: %s %s / %s %s" % (status_a, a, status_b, b))
    record_a = stack.wait_activation(a["activationId"])
    record_b = stack.wait_activation(b["activationId"])
    for record in (record_a, record_b):
        result = record["response"]["result"]
        if not record["response"]["success"] or "error" in result:
            raise RuntimeError("%s exchange failed: %s" % (transport, result))
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
    results = {}
    with wb.Stack("messaging") as stack:
        code = wb.action_code("messaging.py")
        for name in ("left", "right"):
            stack.put_action(name, code, memory=1024)
        # Warm both containers (and create the namespace's overlay) with a tiny exchange.
        exchange(stack, "sdk", [{"kind": "count", "n": 10, "trials": 1}])
        redis_address = start_redis(stack)
        wb.log("redis at %s on %s" % (redis_address, stack.overlay()))
        for transport in TRANSPORTS:
            wb.log("transport %s" % transport)
            started = time.time()
            result = exchange(stack, transport, plan(transport), redis_address)
            results[transport] = result["results"]
            results[transport + ".placement"] = result["placement"]
            wb.log("  %.1f s" % (time.time() - started))
    report(results)


def points(results, transport, kind):
    out = {}
    for point in results.get(transport, []):
        if point["kind"] == kind:
            x = point["n"] if kind == "count" else point["bytes"]
            out[x] = wb.summary(point["seconds"])
    return out


def size_label(n):
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return "%d %s" % (n >> shift, unit)
    return "%d B" % n


def report(results):
    rows, md_rows = [], {}
    for kind in ("count", "size"):
        base = points(results, "sdk", kind)
        tcp, redis, poll = (points(results, t, kind) for t in ("tcp", "redis", "redis-poll"))
        md_rows[kind] = []
        for x, s in sorted(base.items()):
            for transport in TRANSPORTS:
                p = points(results, transport, kind).get(x)
                if p:
                    rows.append([transport, kind, x, p["n"], p["p50"], p["p95"]])
            ratio_redis = redis[x]["p50"] / s["p50"] if x in redis else None
            ratio_poll = poll[x]["p50"] / s["p50"] if x in poll else None
            ratio_tcp = s["p50"] / tcp[x]["p50"] if x in tcp else None
            label = ("%d × 64 B" % x) if kind == "count" else size_label(x)
            md_rows[kind].append([label, "%s / %s" % (wb.fmt_seconds(s["p50"]), wb.fmt_seconds(s["p95"])),
                                  "%s / %s" % (wb.fmt_seconds(tcp[x]["p50"]), wb.fmt_seconds(tcp[x]["p95"])) if x in tcp else "-",
                                  "%s / %s" % (wb.fmt_seconds(redis[x]["p50"]), wb.fmt_seconds(redis[x]["p95"])) if x in redis else "-",
                                  "%s / %s" % (wb.fmt_seconds(poll[x]["p50"]), wb.fmt_seconds(poll[x]["p95"])) if x in poll else "not run",
                                  wb.fmt_ratio(ratio_redis), wb.fmt_ratio(ratio_poll), wb.fmt_ratio(ratio_tcp)])
    wb.write_csv("messaging", ["transport", "kind", "x", "trials", "p50_seconds", "p95_seconds"], rows)
    path = wb.save("messaging", {"results": results})
    info = json.load(open(path))["machine"]
    header = ["", "SDK p50 / p95", "raw TCP", "Redis BLPOP", "Redis 100 ms poll", "Redis / SDK", "poll / SDK", "SDK / TCP"]
    md = ["Machine: %s. Raw data: `docs/benchmarks/messaging.json`, `messaging.csv`; plot `messaging.png`." % wb.machine_line(info),
          "", "Round trips of 64 B (time for the whole series):", "", wb.table(header, md_rows["count"]),
          "", "One message of the given size, then a 1-byte reply:", "", wb.table(header, md_rows["size"]),
          "", "![messaging](benchmarks/messaging.png)"]
    wb.update_doc("messaging", "\n".join(md))
    plot(results)


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
