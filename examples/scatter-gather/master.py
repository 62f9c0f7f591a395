# A scatter-gather master: forms a group with its workers, splits its input into one chunk per
# worker (scatter), and adds up the counts the workers send back (gather). Parameters: workers
# (instance IDs), variant "words" (text: the input) or "tokens" (bytes: how much input to
# generate, as 4-byte word numbers), transport "mesh" or "redis" (with redis "host:port" and key),
# timeout (s). Returns the counts' summary, where every member ran, and when each phase ended
# (epoch seconds): joined (every worker is there) and done (every count is back).
import collections
import json
import time

import numpy
import whiskmesh

VOCABULARY = 1 << 16


def split_text(text, n):
    """n chunks of whole words, of about equal length."""
    words = text.split()
    bounds = [len(words) * i // n for i in range(n + 1)]
    return [" ".join(words[bounds[i]:bounds[i + 1]]).encode() for i in range(n)]


def make_input(args, n):
    if args.get("variant", "words") == "tokens":
        tokens = numpy.random.default_rng(11).integers(0, VOCABULARY, int(args["bytes"]) // 4, dtype=numpy.uint32)
        return numpy.array_split(tokens, n)
    return split_text(args["text"], n)


def summary(counts, variant):
    if variant == "tokens":
        top = numpy.argsort(counts)[::-1][:5]
        return {"words": int(counts.sum()), "distinct": int((counts > 0).sum()), "top": [[int(t), int(counts[t])] for t in top]}
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {"words": sum(counts.values()), "distinct": len(counts), "top": ordered[:5]}


def placement(ids):
    entries = {e["id"]: e["invoker"] for e in whiskmesh.read_map().get("instances", [])}
    return {i: entries.get(i) for i in ids}


def main(args):
    started = time.time()
    variant, timeout = args.get("variant", "words"), float(args.get("timeout", 120))
    workers = [str(w) for w in args["workers"]]
    chunks = make_input(args, len(workers))
    generated = time.time()
    if args.get("transport", "mesh") == "redis":
        counts, joined = over_redis(args, workers, chunks, variant, timeout)
        where = placement([whiskmesh.my_id()] + workers)
    else:
        try:
            with whiskmesh.Group([whiskmesh.my_id()] + workers, timeout=timeout) as group:
                joined = time.time()
                where = placement([whiskmesh.my_id()] + workers)  # while every member is in the map
                group.scatter([b""] + chunks)
                gathered = group.gather(None)[1:]
        except whiskmesh.MeshError as error:
            return {"error": "master: %s" % error}
        if variant == "tokens":
            counts = numpy.sum(gathered, axis=0)
        else:
            counts = collections.Counter()
            for part in gathered:
                counts.update(part)
    done = time.time()
    if isinstance(counts, dict) and "error" in counts:
        return counts
    return dict(summary(counts, variant), workers=len(workers), started=started, generated=generated, joined=joined, done=done,
                placement=where)


def over_redis(args, workers, chunks, variant, timeout):
    """The same job with a Redis server between master and workers: each worker pushes its name
    when it starts, then pops its chunk and pushes its counts."""
    import redis
    host, port = args["redis"].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), socket_timeout=timeout + 5)
    key = args["key"]
    for _ in workers:
        if client.blpop([key + ":joined"], timeout=int(timeout)) is None:
            return {"error": "master: not every worker started within %d s" % timeout}, None
    joined = time.time()
    pipe = client.pipeline(transaction=False)
    for worker, chunk in zip(workers, chunks):
        pipe.rpush(key + ":chunk:" + worker, chunk.tobytes() if variant == "tokens" else chunk)
    pipe.execute()
    results = []
    for _ in workers:
        popped = client.blpop([key + ":result"], timeout=int(timeout))
        if popped is None:
            return {"error": "master: not every count came back within %d s" % timeout}, None
        results.append(popped[1])
    client.delete(key + ":joined", key + ":result")
    if variant == "tokens":
        return numpy.sum([numpy.frombuffer(r, dtype=numpy.int64) for r in results], axis=0), joined
    counts = collections.Counter()
    for r in results:
        counts.update(json.loads(r))
    return counts, joined
