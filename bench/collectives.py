"""Collectives that scale: broadcast and allreduce of 1 KiB .. 64 MiB (float64 arrays) among 4, 16
and 32 members, with the SDK's algorithms chosen by size (tree / chain / ring), its root-centred
star (the SDK before) and through Redis (Debian's redis-server on the overlay), interleaved trial
by trial in the same activations; a shuffle (alltoall of 1 GiB in total among 16 members) over the
mesh and through Redis; one point-to-point transfer of 64 MiB as the yardstick of the targets:
- a 64 MiB broadcast to 16 members within 3× one point-to-point transfer of 64 MiB;
- a 64 MiB allreduce within 2× the ring's bandwidth bound, 2 (N - 1) / N × that transfer's time.
The plan runs twice.

    scripts/bench collectives
"""
import json
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whiskbench as wb  # noqa: E402
from messaging import start_redis  # noqa: E402

MEMBERS = [int(n) for n in os.environ.get("WHISK_BENCH_COLL_MEMBERS", "4,16,32").split(",")]
SIZES = [int(n) for n in os.environ.get("WHISK_BENCH_COLL_SIZES", "1024,65536,1048576,16777216,67108864").split(",")]
TRIALS = int(os.environ.get("WHISK_BENCH_COLL_TRIALS", "3"))
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
SHUFFLE = 1 << 30
SHUFFLE_MEMBERS = 16
P2P = 64 << 20
TRANSPORTS = ["auto", "star", "redis"]


def group_run(stack, n, redis):
    tag = "c%s" % secrets.token_hex(3)
    ids = ["%s-%d" % (tag, i) for i in range(n)]
    args = {"ids": ids, "sizes": SIZES, "trials": TRIALS, "redis": redis, "key": tag,
            "shuffle": SHUFFLE if n == SHUFFLE_MEMBERS else 0, "p2p": P2P}

    def start(member):
        status, body = stack.invoke("member", dict(args), blocking=False, instance=member)
        if status != 202:
            raise RuntimeError("invoke %s: %s %s" % (member, status, body))
        return body["activationId"]
    with ThreadPoolExecutor(16) as pool:
        activations = list(pool.map(start, ids))
    records = [stack.wait_activation(a, timeout=900) for a in activations]
    failed = [(member, record) for member, record in zip(ids, records)
              if not record["response"]["success"] or "error" in record["response"]["result"]]
    if failed:
        # The first member to fail is the one whose error does not just say that another went away.
        failed.sort(key=lambda item: "closed the connection" in str(item[1]["response"]["result"]))
        member, record = failed[0]
        raise RuntimeError("%d members failed, e.g. %s: %s; its log: %s" % (
            len(failed), member, record["response"]["result"], "\n".join(record.get("logs", []))[-3000:]))
    root = next(r["response"]["result"] for r in records if r["response"]["result"].get("rank") == 0)
    if not root["correct"]:
        raise RuntimeError("a collective computed a wrong result (positive control)")
    return root


def main():
    runs = []
    # 768 MB per member: 64 MiB arrays in flight, a copy of the input, Redis' replies. The
    # invokers' nominal memory covers 32 of them; what they use is about half.
    with wb.Stack("collectives", user_memory="12288 MB") as stack:
        stack.put_action("member", wb.action_code("collective.py"), memory=768, timeout=300_000)
        stack.invoke("member", {"ids": ["warm"], "sizes": [], "trials": 1, "redis": "127.0.0.1:1", "key": "w"}, instance="warm")
        redis = start_redis(stack)
        for index in range(1, RUNS + 1):
            wb.log("run %d" % index)
            run = {}
            for n in MEMBERS:
                run[n] = group_run(stack, n, redis)
                times = run[n]["times"]
                for size in SIZES:
                    wb.log("  N=%d %s: broadcast %s, allreduce %s" % (n, wb.fmt_bytes(size), " / ".join(
                        "%s %s" % (t, wb.fmt_seconds(wb.median(times["broadcast/%s/%d" % (t, size)]))) for t in TRANSPORTS), " / ".join(
                        "%s %s" % (t, wb.fmt_seconds(wb.median(times["allreduce/%s/%d" % (t, size)]))) for t in TRANSPORTS)))
            runs.append(run)
    report(runs)


def report(runs):
    rows, tables, notes = [], {"broadcast": [], "allreduce": []}, []
    for op in ("broadcast", "allreduce"):
        for n in MEMBERS:
            for size in SIZES:
                medians = []
                for index, run in enumerate(runs, 1):
                    times = run[n]["times"]
                    series = {t: times["%s/%s/%d" % (op, t, size)] for t in TRANSPORTS}
                    m = {t: wb.median(series[t]) for t in TRANSPORTS}
                    medians.append(m["auto"])
                    rows.append([index, op, n, size] + [m[t] for t in TRANSPORTS])
                    tables[op].append(["%d × %s (run %d)" % (n, wb.fmt_bytes(size), index)] + [wb.fmt_seconds(m[t]) for t in TRANSPORTS] +
                                      [wb.fmt_ratio_spread(wb.ratio(series["star"], series["auto"])),
                                       wb.fmt_ratio_spread(wb.ratio(series["redis"], series["auto"]))])
                if len(medians) == 2 and wb.disagree(*medians):
                    notes.append("%s %d × %s: %s vs %s" % (op, n, wb.fmt_bytes(size), wb.fmt_seconds(medians[0]), wb.fmt_seconds(medians[1])))
    targets, shuffles = [], []
    for index, run in enumerate(runs, 1):
        for n in MEMBERS:
            times = run[n]["times"]
            p2p = wb.median(times.get("p2p/%d" % P2P, []))
            if p2p and P2P in SIZES:
                bcast = wb.median(times["broadcast/auto/%d" % P2P])
                allreduce = wb.median(times["allreduce/auto/%d" % P2P])
                bound = 2 * (n - 1) / n * p2p
                targets.append(["%d (run %d)" % (n, index), wb.fmt_seconds(p2p), wb.fmt_seconds(bcast), "%.2f×" % (bcast / p2p),
                                wb.fmt_seconds(bound), wb.fmt_seconds(allreduce), "%.2f×" % (allreduce / bound)])
            if "alltoall/auto/%d" % SHUFFLE in times:
                mesh, redis = times["alltoall/auto/%d" % SHUFFLE], times["alltoall/redis/%d" % SHUFFLE]
                shuffles.append(["%d (run %d)" % (n, index), wb.fmt_seconds(wb.median(mesh)), wb.fmt_seconds(wb.median(redis)),
                                 wb.fmt_ratio_spread(wb.ratio(redis, mesh))])
    wb.write_csv("collectives", ["run", "operation", "members", "bytes"] + ["%s_p50_s" % t for t in TRANSPORTS], rows)
    path = wb.save("collectives", {"runs": {str(i): {str(n): r for n, r in run.items()} for i, run in enumerate(runs, 1)},
                                   "sizes": SIZES, "members": MEMBERS, "trials": TRIALS})
    info = json.load(open(path))["machine"]
    header = ["members × size", "SDK (by size)", "SDK star (before)", "Redis", "star / SDK", "Redis / SDK"]
    placement = runs[0][MEMBERS[-1]].get("placement", {})
    spread = {}
    for invoker in placement.values():
        spread[invoker] = spread.get(invoker, 0) + 1
    md = ["Machine: %s. Raw data: `docs/benchmarks/collectives.json`, `collectives.csv`." % wb.machine_line(info), "",
          "Members are activations with instance IDs (768 MB each) on two invokers (%d members: %s). Each time is the median "
          "of %d trials framed by barriers (barrier, operation, barrier), transports interleaved trial by trial; ratios are "
          "medians of the per-trial ratios (spread in brackets). A bare barrier pair took %s with %d members. Arrays of "
          "float64; the root is rank 0." % (MEMBERS[-1], ", ".join("invoker%s: %d" % kv for kv in sorted(spread.items())), TRIALS,
                                            wb.fmt_seconds(wb.median(runs[0][MEMBERS[-1]]["times"]["barrier"])), MEMBERS[-1]), "",
          "Broadcast:", "", wb.table(header, tables["broadcast"]), "",
          "Allreduce (sum):", "", wb.table(header, tables["allreduce"]), "",
          "Targets: a 64 MiB broadcast ≤ 3× one 64 MiB point-to-point transfer; a 64 MiB allreduce ≤ 2× the ring's bound "
          "2 (N - 1) / N × that transfer:", "",
          wb.table(["members", "p2p 64 MiB", "broadcast", "/ p2p", "ring bound", "allreduce", "/ bound"], targets), "",
          "Shuffle, alltoall of 1 GiB in total (4 MiB per pair):", "",
          wb.table(["members", "SDK alltoall", "Redis", "Redis / SDK"], shuffles), "",
          "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere")]
    wb.update_doc("collectives", "\n".join(md))


if __name__ == "__main__":
    wb.run_benchmark(main)
