# A scatter-gather worker: joins the group of its master, receives one chunk, counts what is in
# it and sends the counts back. Parameters: master (the master's instance ID), workers (every
# worker's instance ID, in rank order), variant ("words": a chunk of text; "tokens": a NumPy array
# of word numbers), transport ("mesh", or "redis" with redis "host:port" and key, the same job
# through a Redis server), timeout (s).
import collections
import json
import time

import numpy
import whiskmesh

VOCABULARY = 1 << 16


def count(chunk, variant):
    if variant == "tokens":
        return numpy.bincount(chunk, minlength=VOCABULARY)
    return dict(collections.Counter(bytes(chunk).decode().split()))


def main(args):
    started = time.time()
    variant, timeout = args.get("variant", "words"), float(args.get("timeout", 120))
    if args.get("transport", "mesh") == "redis":
        return over_redis(args, variant, timeout, started)
    ids = [str(args["master"])] + [str(w) for w in args["workers"]]
    try:
        with whiskmesh.Group(ids, root=ids[0], timeout=timeout) as group:
            chunk = group.scatter()
            group.gather(count(chunk, variant))
    except whiskmesh.MeshError as error:
        return {"error": "worker %s: %s" % (whiskmesh.my_id(), error)}
    return {"worker": whiskmesh.my_id(), "started": started}


def over_redis(args, variant, timeout, started):
    import redis
    host, port = args["redis"].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), socket_timeout=timeout + 5)
    me, key = whiskmesh.my_id(), args["key"]
    client.rpush(key + ":joined", me)
    popped = client.blpop([key + ":chunk:" + me], timeout=int(timeout))
    if popped is None:
        return {"error": "worker %s: no chunk within %d s" % (me, timeout)}
    chunk = popped[1]
    if variant == "tokens":
        payload = count(numpy.frombuffer(chunk, dtype=numpy.uint32), variant).tobytes()
    else:
        payload = json.dumps(count(chunk, variant)).encode()
    client.rpush(key + ":result", payload)
    return {"worker": me, "started": started}
