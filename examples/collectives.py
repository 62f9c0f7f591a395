# Runs every collective once among the instances `ids` (this instance is one of them) and
# reports what it saw; the root checks the gathered data.
import hashlib

import numpy
import whiskmesh


def main(args):
    ids = [str(i) for i in args["ids"]]
    if args.get("skip") == whiskmesh.my_id():
        return {"skipped": True}  # plays a member that never joins
    timeout = float(args.get("timeout", 60))
    try:
        with whiskmesh.Group(ids, root=args.get("root"), timeout=timeout) as group:
            invokers = None
            if group.is_root:
                # Where every member runs, as the address map says. The join needs no member's
                # entry at the root, so wait for them all here: a member's entry from the other
                # invoker can reach this map after the join (it did: 16 of 17 were there).
                whiskmesh.wait_for(ids, timeout=timeout)
                invokers = {e["id"]: e["invoker"] for e in whiskmesh.read_map()["instances"] if e["id"] in ids}
            n, rank = group.size, group.rank
            block = int(args.get("block", 1024))
            chunks = [bytes([i % 256]) * block for i in range(n)] if group.is_root else None
            mine = group.scatter(chunks)
            gathered = group.gather(bytes(mine))
            payload = group.broadcast(hashlib.sha256(b"".join(gathered)).hexdigest().encode() if group.is_root else None)
            total = group.allreduce([1, rank])
            # An array large enough for the ring algorithm and a broadcast large enough for the chain.
            ring = group.allreduce(numpy.full(300_000, rank + 1, dtype=numpy.int64))
            big = group.broadcast(numpy.arange(1 << 20, dtype=numpy.uint8) if group.is_root else None)
            everyone = group.allgather(rank)
            shuffled = group.alltoall([("%d>%d" % (rank, j)).encode() for j in range(n)])
            group.barrier()
            return {"me": group.me, "rank": rank, "chunkOK": bytes(mine) == bytes([rank % 256]) * block,
                    "gatheredOK": None if gathered is None else all(bytes(g) == bytes([i % 256]) * block for i, g in enumerate(gathered)),
                    "digest": bytes(payload).decode(), "allreduce": total,
                    "ringOK": bool((ring == n * (n + 1) // 2).all()),
                    "chainOK": bool((big == numpy.arange(1 << 20, dtype=numpy.uint8)).all()),
                    "allgatherOK": everyone == list(range(n)),
                    "alltoallOK": [bytes(s) for s in shuffled] == [("%d>%d" % (j, rank)).encode() for j in range(n)],
                    "invokers": invokers}
    except whiskmesh.MeshError as error:
        return {"error": "collective failed: %s" % error}
