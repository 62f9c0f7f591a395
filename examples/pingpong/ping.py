# Ping: finds its peer through the address map, sends `count` small messages and one of `size`
# bytes, and checks that every echo matches.
import hashlib
import os
import time

import whiskmesh


def main(args):
    peer_id = args["peer"]
    count = int(args.get("count", 1000))
    size = int(args.get("size", 0))
    with whiskmesh.connect(peer_id, timeout=float(args.get("timeout", 60))) as peer:
        started = time.monotonic()
        for i in range(count):
            payload = b"%08d" % i + b"x" * 56
            peer.send(payload)
            if peer.recv() != payload:
                return {"error": "echo %d differs" % i}
        small = time.monotonic() - started
        digest = None
        if size:
            blob = os.urandom(size)
            digest = hashlib.sha256(blob).hexdigest()
            peer.send(blob)
            echoed = peer.recv()
            if hashlib.sha256(echoed).hexdigest() != digest:
                return {"error": "the large message came back corrupted"}
        peer.send(b"")
        peer.recv()
    return {"me": whiskmesh.my_id(), "peer": peer_id, "roundTrips": count, "smallSeconds": small,
            "largeBytes": size, "sha256": digest, "peers": whiskmesh.peers(),
            "invokers": {entry["id"]: entry["invoker"] for entry in whiskmesh.read_map()["instances"]}}
