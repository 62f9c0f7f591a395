# Benchmark 1's action: one side of a message exchange between two instances.
#
# role "a" drives: for every point of the plan it times the exchange with perf_counter and returns
# the samples; role "b" answers. Several transports run interleaved, trial by trial. Transports:
#   sdk         whiskmesh.connect/listen and Connection.send/recv (framed) over the overlay
#   tcp         a plain socket between the same two containers, no framing (the physical limit)
#   redis       RPUSH + BLPOP through a Redis server on the namespace's overlay
#   redis-poll  RPUSH + LPOP polled every 100 ms (the paper's baseline)
# A plan point is {"kind": "count", "n": N, "trials": T} (N round trips of 64 B) or
# {"kind": "size", "bytes": S, "trials": T} (S bytes a -> b, then a 1-byte reply).
import socket
import time

import whiskmesh

SMALL = 64
RAW_PORT = 7090
POLL = 0.1


class Sdk:
    def __init__(self, role, peer):
        if role == "a":
            self.conn = whiskmesh.connect(peer, timeout=120)
        else:
            listener = whiskmesh.listen()
            self.conn = whiskmesh.accept(listener, timeout=120)
            listener.close()
        self.buffers = {}

    def send(self, data):
        self.conn.send(data)

    def recv(self, size):
        # The SDK's allocation-free path, as raw TCP below reuses its buffer too.
        if size not in self.buffers:
            self.buffers[size] = bytearray(size)
        return self.conn.recv(timeout=240, into=self.buffers[size])


class RawTcp:
    def __init__(self, role, peer):
        if role == "a":
            ip = whiskmesh.wait_for([peer], timeout=120)[peer]
            deadline = time.monotonic() + 120
            while True:
                try:
                    self.sock = socket.create_connection((ip, RAW_PORT), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        else:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((whiskmesh.my_ip(), RAW_PORT))
            listener.listen(1)
            listener.settimeout(120)
            self.sock, _ = listener.accept()
            listener.close()
        self.sock.settimeout(240)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            self.sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        self.buffers = {}

    def send(self, data):
        self.sock.sendall(data)

    def recv(self, size):
        buffer = self.buffers.get(size)
        if buffer is None:
            buffer = self.buffers[size] = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:], size - got)
            if n == 0:
                raise ConnectionError("peer closed after %d of %d bytes" % (got, size))
            got += n
        return buffer


class Redis:
    def __init__(self, role, peer, address, key, poll):
        import redis
        host, port = address.rsplit(":", 1)
        self.client = redis.Redis(host=host, port=int(port), socket_timeout=240)
        self.poll = poll
        self.mine = "%s:%s" % (key, "b2a" if role == "a" else "a2b")
        self.theirs = "%s:%s" % (key, "a2b" if role == "a" else "b2a")

    def send(self, data):
        self.client.rpush(self.theirs, bytes(data) if not isinstance(data, bytes) else data)

    def recv(self, size):
        if self.poll:
            while True:
                value = self.client.lpop(self.mine)
                if value is not None:
                    return value
                time.sleep(POLL)
        _, value = self.client.blpop([self.mine], timeout=0)
        return value


def open_channel(transport, role, peer, args):
    if transport == "sdk":
        channel = Sdk(role, peer)
    elif transport == "tcp":
        channel = RawTcp(role, peer)
    else:
        channel = Redis(role, peer, args["redis"], "%s:%s" % (args["key"], transport), poll=transport == "redis-poll")
    # A short handshake so that neither side's connection set-up is in the first sample.
    if role == "a":
        channel.send(b"m" * SMALL)
        channel.recv(SMALL)
    else:
        channel.send(channel.recv(SMALL))
    return channel


def trial(channel, role, point):
    """One sample of `point` (role a times it; role b answers). Returns seconds, None, or an error string."""
    small, ack = b"m" * SMALL, b"k"
    if point["kind"] == "count":
        if role == "a":
            started = time.perf_counter()
            for _ in range(point["n"]):
                channel.send(small)
                if len(channel.recv(SMALL)) != SMALL:
                    return "short echo"
            return time.perf_counter() - started
        for _ in range(point["n"]):
            channel.send(channel.recv(SMALL))
        return None
    size = point["bytes"]
    if role == "a":
        payload = bytes(size)
        started = time.perf_counter()
        channel.send(payload)
        reply = channel.recv(1)
        elapsed = time.perf_counter() - started
        return elapsed if len(reply) == 1 else "bad reply"
    data = channel.recv(size)
    if len(data) != size:
        return "received %d of %d bytes" % (len(data), size)
    channel.send(ack)
    return None


def main(args):
    """Every transport of args["transports"] is opened at once; each trial of each plan point then
    runs once per transport in turn (ABCABC...), so drift touches all of them alike."""
    role, peer, plan = args["role"], args["peer"], args["plan"]
    transports = args.get("transports") or [args["transport"]]
    channels = {t: open_channel(t, role, peer, args) for t in transports}
    results = {t: [] for t in transports}
    for point in plan:
        samples = {t: [] for t in transports}
        for _ in range(point["trials"]):
            for transport in transports:
                outcome = trial(channels[transport], role, point)
                if isinstance(outcome, str):
                    return {"error": "%s: %s" % (transport, outcome)}
                if outcome is not None:
                    samples[transport].append(outcome)
        for transport in transports:
            results[transport].append(dict(point, seconds=samples[transport]))
            getattr(channels[transport], "buffers", {}).clear()
    placement = {entry["id"]: entry["invoker"] for entry in whiskmesh.read_map()["instances"]}
    return {"role": role, "transports": transports, "results": results, "placement": placement}
