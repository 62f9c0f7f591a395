# Benchmark 6's action: one member of a group that times collective operations.
#
# Every member runs the same plan; rank 0 keeps the times. Each timed operation is framed by
# barriers (barrier, start clock, operation, barrier, stop clock), so a time covers every member's
# part; the time of a bare barrier pair is reported too. Transports, interleaved trial by trial:
#   auto   the SDK's algorithms chosen by size (tree / chain / ring)
#   star   the SDK's root-centred versions (algorithm="star": the SDK before this benchmark)
#   redis  through a Redis server on the overlay (SET/GET, the root reduces)
# Parameters: ids, sizes (bytes), trials, redis ("host:port"), key, shuffle (total bytes of an
# alltoall, 0 for none), p2p (bytes of a point-to-point transfer from rank 0 to rank 1).
import time

import numpy
import redis
import whiskmesh

TRANSPORTS = ["auto", "star", "redis"]


def as_bytes(array):
    """The array's memory as bytes for redis-py, without a copy (a float64 memoryview's len() counts
    elements, and the Redis protocol needs the length in bytes)."""
    return memoryview(array).cast("B")


def timed(group, run):
    group.barrier()
    started = time.perf_counter()
    run()
    group.barrier()
    return time.perf_counter() - started


def main(args):
    ids = [str(i) for i in args["ids"]]
    host, port = args["redis"].rsplit(":", 1)
    store = redis.Redis(host=host, port=int(port), socket_timeout=600)
    key = args["key"]
    trials = int(args.get("trials", 3))
    times = {}
    checks = []

    def record(name, seconds):
        times.setdefault(name, []).append(seconds)

    with whiskmesh.Group(ids, timeout=600) as group:
        rank, size = group.rank, group.size
        record("barrier", timed(group, lambda: None))
        p2p = int(args.get("p2p", 0))
        if p2p and size > 1:
            data = numpy.ones(p2p // 8)
            target = numpy.empty_like(data)
            for _ in range(trials):
                record("p2p/%d" % p2p, timed(group, lambda: group.send(data, 1) if rank == 0 else
                                             (group.recv(0, into=target) if rank == 1 else None)))
            del data, target
        for nbytes in args["sizes"]:
            mine = numpy.full(max(1, nbytes // 8), float(rank + 1))
            last = float(max(1, nbytes // 8) - 1)
            source = numpy.arange(max(1, nbytes // 8), dtype=numpy.float64) if rank == 0 else None
            for _ in range(trials):
                for transport in TRANSPORTS:
                    out = {}

                    def broadcast():
                        if transport == "redis":
                            if rank == 0:
                                store.set(key + ":b", as_bytes(source))
                            group.barrier()
                            out["b"] = source if rank == 0 else numpy.frombuffer(store.get(key + ":b"), dtype=numpy.float64)
                        else:
                            out["b"] = group.broadcast(source if rank == 0 else None, root=0,
                                                       algorithm="star" if transport == "star" else None)

                    def allreduce():
                        if transport == "redis":
                            store.set("%s:r:%d" % (key, rank), as_bytes(mine))
                            group.barrier()
                            if rank == 0:
                                total = mine.copy()
                                for member in range(1, size):
                                    total += numpy.frombuffer(store.get("%s:r:%d" % (key, member)), dtype=numpy.float64)
                                store.set(key + ":sum", as_bytes(total))
                            group.barrier()
                            out["r"] = numpy.frombuffer(store.get(key + ":sum"), dtype=numpy.float64)
                        else:
                            out["r"] = group.allreduce(mine, algorithm="star" if transport == "star" else None)
                    record("broadcast/%s/%d" % (transport, nbytes), timed(group, broadcast))
                    record("allreduce/%s/%d" % (transport, nbytes), timed(group, allreduce))
                    # Positive control: every transport computed the right thing.
                    checks.append(bool(out["b"][-1] == last) and bool(out["r"][0] == size * (size + 1) / 2))
                    out.clear()
                    if transport == "redis":
                        group.barrier()
                        if rank == 0:
                            store.delete(key + ":b", key + ":sum", *["%s:r:%d" % (key, m) for m in range(size)])
        shuffle = int(args.get("shuffle", 0))
        if shuffle:
            part = max(1, shuffle // (size * size) // 8)
            chunks = [numpy.full(part, float(rank * size + j)) for j in range(size)]
            for _ in range(trials):
                for transport in ("auto", "redis"):
                    out = {}

                    def alltoall():
                        if transport == "redis":
                            pipe = store.pipeline(transaction=False)
                            for j in range(size):
                                pipe.set("%s:s:%d:%d" % (key, rank, j), as_bytes(chunks[j]))
                            pipe.execute()
                            group.barrier()
                            out["s"] = [numpy.frombuffer(b, dtype=numpy.float64)
                                        for b in store.mget(["%s:s:%d:%d" % (key, j, rank) for j in range(size)])]
                        else:
                            out["s"] = group.alltoall(chunks)
                    record("alltoall/%s/%d" % (transport, shuffle), timed(group, alltoall))
                    checks.append(all(out["s"][j][0] == j * size + rank for j in range(size)))
                    out.clear()
                    if transport == "redis":
                        group.barrier()
                        store.delete(*["%s:s:%d:%d" % (key, rank, j) for j in range(size)])
        ok = group.allreduce(int(all(checks)), op="min")
    if rank != 0:
        return {"rank": rank}
    return {"rank": 0, "times": times, "correct": bool(ok), "checks": len(checks),
            "placement": {e["id"]: e["invoker"] for e in whiskmesh.read_map()["instances"] if e["id"] in ids}}
