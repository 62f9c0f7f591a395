"""Scatter-gather (seed 003's experiment, made real): a master and N workers count words, each an
activation with an instance ID (examples/scatter-gather). For N = 6, 11, 17, 35 and 64:

- cold: fresh containers (every container of the run is removed before each cold job), the time
  from the first invoke to the master's result, split into launch (until every worker joined)
  and communication; over the mesh and through Redis (Debian's redis-server on the overlay);
- Docker's own floor in the same run: creating and starting N + 1 containers of the runtime's
  image at once, straight through the Docker Engine API;
- warm: the same job again on warm containers, mesh and Redis interleaved trial by trial;
- seed 003's reported times for 6, 11, 17 and 35 workers, cold.
Then the 256 MiB variant (generated word numbers), warm, mesh against Redis.

The whole plan runs twice (run 1, run 2); docs/benchmarks.md shows both and marks where they
disagree by more than 25 %.

    scripts/bench scattergather
"""
import concurrent.futures
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "scatter-gather"))
import job as sg  # noqa: E402
import whiskbench as wb  # noqa: E402
from messaging import start_redis  # noqa: E402

WORKERS = [int(n) for n in os.environ.get("WHISK_BENCH_SG_WORKERS", "6,11,17,35,64").split(",")]
SEED003 = {6: 4.58, 11: 5.87, 17: 10.10, 35: 18.77}
WARM_TRIALS = int(os.environ.get("WHISK_BENCH_SG_WARM", "5"))
BIG = 256 << 20
BIG_WORKERS = [int(n) for n in os.environ.get("WHISK_BENCH_SG_BIG_WORKERS", "6,17").split(",")]
RUNS = int(os.environ.get("WHISK_BENCH_RUNS", "2"))
PYTHON_IMAGE = os.environ.get("WHISK_PYTHON_IMAGE", "whiskmesh/python:3")


def docker_floor(stack, count):
    """Seconds Docker needs to create and start `count` containers at once (then removes them)."""
    import docker
    client = docker.from_env(timeout=300)
    labels = {wb.LABEL: stack.run}

    def one(index):
        container = client.containers.create(PYTHON_IMAGE, labels=labels, name="wmbench-floor-%s-%d" % (stack.run, index))
        container.start()
        return container
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        containers = list(pool.map(one, range(count)))
    elapsed = time.time() - started
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))
    return elapsed


def fresh(stack):
    """Removes every action container of the run (not the Redis server), so the next job starts
    cold; waits until the invokers have seen them go."""
    ids = wb.docker("ps", "-aq", "--filter", "label=%s=%s" % (wb.LABEL, stack.run), "--filter", "label=org.whiskmesh.invoker",
                    check=False).split()
    if ids:
        wb.docker("rm", "-f", *ids, check=False)
    time.sleep(3)


def one_run(stack, client, redis, index):
    wb.log("run %d" % index)
    master, worker = sg.deploy(client, prefix="sg")
    out = {"cold": {}, "warm": {}, "big": {}}
    for n in WORKERS:
        def cold(transport, _trial):
            if transport == "docker":
                return {"total": docker_floor(stack, n + 1)}
            fresh(stack)
            result = sg.run(client, n, master, worker, transport=transport, redis=redis, timeout=300)
            wb.log("  N=%d cold %s: %.2f s (launch %.2f, communication %.3f)" % (n, transport, result["total"], result["launch"], result["communication"]))
            return {k: result[k] for k in ("total", "launch", "communication")} | {"placement": placement(result)}
        out["cold"][n] = wb.interleave(["docker", "mesh", "redis"], 1, cold)

        def warm(transport, _trial):
            result = sg.run(client, n, master, worker, transport=transport, redis=redis, timeout=300)
            return {k: result[k] for k in ("total", "launch", "communication")}
        sg.run(client, n, master, worker, transport="redis", redis=redis)  # containers for N workers, warm
        out["warm"][n] = wb.interleave(["mesh", "redis"], WARM_TRIALS, warm)
        wb.log("  N=%d warm mesh p50 %.3f s, redis p50 %.3f s" % (n, wb.median([t["total"] for t in out["warm"][n]["mesh"]]),
                                                                  wb.median([t["total"] for t in out["warm"][n]["redis"]])))
    big_master, big_worker = sg.deploy(client, prefix="sgbig", master_memory=2048, worker_memory=512)
    for n in BIG_WORKERS:
        sg.run(client, n, big_master, big_worker, variant="tokens", size=BIG, transport="mesh")  # warm-up

        def big(transport, _trial):
            result = sg.run(client, n, big_master, big_worker, variant="tokens", size=BIG, transport=transport, redis=redis, timeout=300)
            return {k: result[k] for k in ("total", "launch", "communication")}
        out["big"][n] = wb.interleave(["mesh", "redis"], 3, big)
        wb.log("  256 MiB N=%d communication: mesh %.2f s, redis %.2f s" % (
            n, wb.median([t["communication"] for t in out["big"][n]["mesh"]]), wb.median([t["communication"] for t in out["big"][n]["redis"]])))
    fresh(stack)
    return out


def placement(result):
    invokers = [v for v in result["result"]["placement"].values() if v is not None]
    return {str(i): invokers.count(i) for i in sorted(set(invokers))}


def main():
    runs = []
    with wb.Stack("scattergather", user_memory="10240 MB") as stack:
        client = sg.Client(stack.api, wb.GUEST_AUTH)
        master, worker = sg.deploy(client, prefix="sg")
        sg.run(client, 2, master, worker)  # creates the namespace's overlay
        redis = start_redis(stack)
        for index in range(1, RUNS + 1):
            runs.append(one_run(stack, client, redis, index))
    report(runs)


def figures(run, n):
    cold, warm = run["cold"][n], run["warm"][n]
    mesh_cold, redis_cold, floor = cold["mesh"][0], cold["redis"][0], cold["docker"][0]["total"]
    return {
        "floor": floor, "mesh_cold": mesh_cold["total"], "mesh_launch": mesh_cold["launch"], "mesh_comm": mesh_cold["communication"],
        "redis_cold": redis_cold["total"], "cold_vs_floor": mesh_cold["total"] / floor,
        "mesh_warm": wb.median([t["total"] for t in warm["mesh"]]), "redis_warm": wb.median([t["total"] for t in warm["redis"]]),
        "mesh_warm_comm": wb.median([t["communication"] for t in warm["mesh"]]),
        "warm_ratio": wb.ratio([t["total"] for t in warm["redis"]], [t["total"] for t in warm["mesh"]]),
        "placement": mesh_cold.get("placement"),
    }


def report(runs):
    rows, md_rows, notes = [], [], []
    for n in WORKERS:
        per_run = [figures(run, n) for run in runs]
        for index, f in enumerate(per_run, 1):
            rows.append([index, n, f["floor"], f["mesh_cold"], f["mesh_launch"], f["mesh_comm"], f["redis_cold"], f["mesh_warm"],
                         f["mesh_warm_comm"], f["redis_warm"], f["warm_ratio"]["median"] if f["warm_ratio"] else None])
            md_rows.append(["%d (run %d)" % (n, index), wb.fmt_seconds(SEED003.get(n)) if index == 1 else "",
                            wb.fmt_seconds(f["floor"]),
                            "%s (%s + %s)" % (wb.fmt_seconds(f["mesh_cold"]), wb.fmt_seconds(f["mesh_launch"]), wb.fmt_seconds(f["mesh_comm"])),
                            "%.2f×" % f["cold_vs_floor"], wb.fmt_seconds(f["redis_cold"]),
                            "%s (%s)" % (wb.fmt_seconds(f["mesh_warm"]), wb.fmt_seconds(f["mesh_warm_comm"])),
                            wb.fmt_seconds(f["redis_warm"]), wb.fmt_ratio_spread(f["warm_ratio"]),
                            " ".join("inv%s:%d" % kv for kv in (f["placement"] or {}).items())])
        if len(per_run) == 2:
            for key, label in (("mesh_cold", "mesh cold"), ("floor", "Docker floor"), ("redis_cold", "Redis cold"),
                               ("mesh_warm", "mesh warm"), ("redis_warm", "Redis warm")):
                if wb.disagree(per_run[0][key], per_run[1][key]):
                    notes.append("N=%d %s: %s vs %s" % (n, label, wb.fmt_seconds(per_run[0][key]), wb.fmt_seconds(per_run[1][key])))
    big_rows = []
    for n in BIG_WORKERS:
        for index, run in enumerate(runs, 1):
            big = run["big"][n]
            ratio = wb.ratio([t["communication"] for t in big["redis"]], [t["communication"] for t in big["mesh"]])
            big_rows.append(["%d (run %d)" % (n, index), wb.fmt_seconds(wb.median([t["total"] for t in big["mesh"]])),
                             wb.fmt_seconds(wb.median([t["communication"] for t in big["mesh"]])),
                             wb.fmt_seconds(wb.median([t["total"] for t in big["redis"]])),
                             wb.fmt_seconds(wb.median([t["communication"] for t in big["redis"]])), wb.fmt_ratio_spread(ratio)])
    wb.write_csv("scattergather", ["run", "workers", "docker_floor_s", "mesh_cold_s", "mesh_cold_launch_s", "mesh_cold_comm_s", "redis_cold_s",
                                   "mesh_warm_p50_s", "mesh_warm_comm_p50_s", "redis_warm_p50_s", "redis_over_mesh_warm"], rows)
    path = wb.save("scattergather", {"runs": runs, "seed003": SEED003})
    info = __import__("json").load(open(path))["machine"]
    md = ["Machine: %s. Raw data: `docs/benchmarks/scattergather.json`, `scattergather.csv`." % wb.machine_line(info), "",
          "Word count of the 1,654-byte text, a master and N workers (128 MB each), two invokers. Cold: every container removed "
          "before the job; time from the first invoke to the master's result (launch until every worker joined + communication). "
          "Docker floor: creating and starting N + 1 containers at once through the Engine API, same run. Warm: median of %d "
          "trials, mesh and Redis interleaved; Redis/mesh is the median of the per-trial ratios (spread in brackets)." % WARM_TRIALS, "",
          wb.table(["workers", "seed 003 (cold)", "Docker floor", "mesh cold (launch + comm.)", "cold / floor", "Redis cold",
                    "mesh warm (comm.)", "Redis warm", "Redis / mesh warm", "mesh cold placement"], md_rows), "",
          "256 MiB of generated word numbers (4-byte tokens, a histogram per worker), warm, 3 trials interleaved:", "",
          wb.table(["workers", "mesh total", "mesh comm.", "Redis total", "Redis comm.", "Redis / mesh comm."], big_rows), "",
          "Where the two runs disagree by more than 25 %%: %s." % ("; ".join(notes) if notes else "nowhere")]
    wb.update_doc("scattergather", "\n".join(md))


if __name__ == "__main__":
    wb.run_benchmark(main)
