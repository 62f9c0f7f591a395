# Runs every collective once among the instances `ids` (this instance is one of them) and
# reports what it saw; the root checks the gathered data.
import hashlib

import whiskmesh


def main(args):
    ids = [str(i) for i in args["ids"]]
    if args.get("skip") == whiskmesh.my_id():
        return {"skipped": True}  # plays a member that never joins
    timeout = float(args.get("timeout", 60))
    try:
        with whiskmesh.Group(ids, root=args.get("root"), timeout=timeout) as group:
            group.barrier()
            invokers = None
            if group.is_root:
                # Where every member runs, as the address map says.
                whiskmesh.wait_for(ids, timeout=timeout)
                invokers = {e["id"]: e["invoker"] for e in whiskmesh.read_map()["instances"] if e["id"] in ids}
            block = int(args.get("block", 1024))
            chunks = [bytes([i % 256]) * block for i in range(len(ids))] if group.is_root else None
            mine = group.scatter(chunks)
            gathered = group.gather(bytes(mine))
            payload = group.broadcast(hashlib.sha256(b"".join(gathered)).hexdigest().encode() if group.is_root else None)
            total = group.allreduce([1, group.rank])
            group.barrier()
            return {"me": group.me, "rank": group.rank, "chunkOK": bytes(mine) == bytes([group.rank % 256]) * block,
                    "gatheredOK": None if gathered is None else all(bytes(g) == bytes([i % 256]) * block for i, g in enumerate(gathered)),
                    "digest": bytes(payload).decode(), "allreduce": total, "invokers": invokers}
    except whiskmesh.MeshError as error:
        return {"error": "collective failed: %s" % error}
