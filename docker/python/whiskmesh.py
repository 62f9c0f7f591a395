"""WhiskMesh SDK: find other function instances of your namespace and message them directly.

The address map is a JSON file (schema "whiskmesh.addressmap/v1") that the invoker replaces
atomically, so every read sees a whole map:

    {"schema": "whiskmesh.addressmap/v1", "namespace": "guest", "version": 12,
     "instances": [{"id": "a", "ip": "10.130.0.5", "invoker": 0, "activationId": "..."}]}

Messages are framed with an 8-byte big-endian length. Receiving reads straight into one
buffer of the final size (no quadratic growth), sending writes from a memoryview (no copies).
"""
import json
import os
import socket
import struct
import time

DEFAULT_PORT = 7070
_HEADER = struct.Struct(">Q")
MAX_MESSAGE = 1 << 40


class MeshError(Exception):
    """A peer is missing, unreachable or gone."""


def map_path():
    return os.environ.get("__OW_ADDRESS_MAP", "/var/run/whisk/addressmap/map.json")


def my_id():
    return os.environ.get("__OW_INSTANCE_ID")


def my_ip():
    return os.environ.get("__OW_OVERLAY_IP")


def read_map():
    """The whole map (a dict), or an empty one when the file does not exist yet."""
    try:
        with open(map_path()) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"schema": "whiskmesh.addressmap/v1", "namespace": None, "version": 0, "instances": []}


def peers():
    """{instance id: overlay ip} of every live instance of the namespace."""
    return {entry["id"]: entry["ip"] for entry in read_map().get("instances", [])}


def wait_for(ids, timeout=30.0, poll=0.002):
    """Waits until every id in `ids` is in the map; returns {id: ip}. Raises MeshError on timeout."""
    wanted = [str(i) for i in ids]
    deadline = time.monotonic() + timeout
    while True:
        current = peers()
        if all(i in current for i in wanted):
            return {i: current[i] for i in wanted}
        if time.monotonic() > deadline:
            missing = [i for i in wanted if i not in current]
            raise MeshError("instances %s did not appear in the address map within %.1f s" % (missing, timeout))
        time.sleep(poll)


class Connection:
    """A framed, bidirectional message stream to one peer."""

    # Below this size the header and the payload leave in one write (one segment with
    # TCP_NODELAY, one wake-up at the peer); above it the payload is sent from its own memory.
    COALESCE = 64 << 10

    def __init__(self, sock):
        self.sock = sock
        self._timeout = sock.gettimeout()
        self._stage = bytearray(64 << 10)
        self._view = memoryview(self._stage)
        self._start = self._end = 0
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
            except OSError:
                pass

    def send(self, data):
        view = memoryview(data).cast("B")
        header = _HEADER.pack(len(view))
        if len(view) <= self.COALESCE:
            self.sock.sendall(header + view)
        else:
            self.sock.sendall(header)
            self.sock.sendall(view)

    def recv(self, timeout=None, into=None):
        """One whole message: a new bytearray, or, when `into` (a writable buffer at least as large
        as the message) is given, a memoryview of the message received into it (no allocation).

        Reads go through a 64 KiB staging buffer, so a small message and its header usually take
        one system call; the body of a large one is received straight into its destination."""
        if timeout != self._timeout:
            self.sock.settimeout(timeout)  # a system call: only when the timeout changes
            self._timeout = timeout
        self._fill(_HEADER.size)
        (length,) = _HEADER.unpack_from(self._stage, self._start)
        self._start += _HEADER.size
        if length > MAX_MESSAGE:
            raise MeshError("message of %d bytes announced: not a WhiskMesh peer?" % length)
        if into is not None:
            view = memoryview(into).cast("B")
            if len(view) < length:
                raise MeshError("a message of %d bytes does not fit the %d-byte buffer" % (length, len(view)))
        else:
            view = memoryview(bytearray(length))
        buffered = min(length, self._end - self._start)
        if length <= len(self._stage) - self._start:
            self._fill(length)  # fits behind the header: keep reading into the stage
            buffered = length
        view[:buffered] = self._view[self._start:self._start + buffered]
        self._start += buffered
        received = buffered
        while received < length:
            count = self.sock.recv_into(view[received:length], min(length - received, 8 << 20))
            if count == 0:
                raise MeshError("the peer closed the connection after %d of %d bytes" % (received, length))
            received += count
        return view[:length] if into is not None else view.obj

    def _fill(self, count):
        """Makes `count` bytes available in the stage from self._start, reading what the socket has."""
        if self._end - self._start >= count:
            return
        if self._start + count > len(self._stage):
            pending = self._end - self._start
            self._view[:pending] = self._view[self._start:self._end]
            self._start, self._end = 0, pending
        while self._end - self._start < count:
            read = self.sock.recv_into(self._view[self._end:], len(self._stage) - self._end)
            if read == 0:
                raise MeshError("the peer closed the connection after %d of %d bytes" % (self._end - self._start, count))
            self._end += read

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def listen(port=DEFAULT_PORT, backlog=128):
    """A listening socket on this instance's overlay address."""
    address = my_ip() or "0.0.0.0"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(backlog)
    return listener


def accept(listener, timeout=30.0):
    listener.settimeout(timeout)
    try:
        sock, _ = listener.accept()
    except socket.timeout:
        raise MeshError("no peer connected within %.1f s" % timeout)
    sock.settimeout(None)
    return Connection(sock)


def connect(peer_id, port=DEFAULT_PORT, timeout=30.0):
    """Connects to instance `peer_id`, waiting for it to appear in the map and to listen."""
    deadline = time.monotonic() + timeout
    ip = wait_for([peer_id], timeout=timeout)[str(peer_id)]
    last_error = None
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((ip, port), timeout=max(0.1, deadline - time.monotonic()))
            sock.settimeout(None)
            return Connection(sock)
        except OSError as error:
            last_error = error
            time.sleep(0.01)
            ip = peers().get(str(peer_id), ip)
    raise MeshError("cannot connect to instance %s at %s:%d: %s" % (peer_id, ip, port, last_error))


# ---------------------------------------------------------------------------------------------
# Collectives among a group of instances, over persistent TCP connections on the overlay.
#
# The group is a star around its root: the root listens, every other member connects to it once
# and says who it is. scatter, gather, broadcast, barrier and allreduce then run over those
# connections. Payloads of scatter/gather/broadcast are bytes (sent from memoryviews, received
# into one buffer each); allreduce works on JSON values. Every operation has a deadline: a peer
# that dies or never answers makes the others fail with MeshError instead of hanging.

COLLECTIVE_PORT = 7071


def _sum(a, b):
    if isinstance(a, list):
        return [_sum(x, y) for x, y in zip(a, b)]
    return a + b


class Group:
    def __init__(self, ids, root=None, port=COLLECTIVE_PORT, timeout=30.0):
        self.ids = [str(i) for i in ids]
        if len(set(self.ids)) != len(self.ids):
            raise MeshError("group members must be distinct: %s" % self.ids)
        self.me = my_id()
        if self.me not in self.ids:
            raise MeshError("this instance (%s) is not in the group %s" % (self.me, self.ids))
        self.root = str(root) if root is not None else self.ids[0]
        if self.root not in self.ids:
            raise MeshError("the root %s is not in the group" % self.root)
        self.timeout = timeout
        self.peers = {}  # at the root: id -> Connection; elsewhere: {root: Connection}
        if len(self.ids) == 1:
            return
        if self.is_root:
            self._accept_members(port, timeout)
        else:
            connection = connect(self.root, port=port, timeout=timeout)
            connection.send(self.me.encode())
            self.peers[self.root] = connection

    @property
    def is_root(self):
        return self.me == self.root

    @property
    def rank(self):
        return self.ids.index(self.me)

    def _accept_members(self, port, timeout):
        listener = listen(port)
        deadline = time.monotonic() + timeout
        try:
            while len(self.peers) < len(self.ids) - 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [i for i in self.ids if i != self.me and i not in self.peers]
                    raise MeshError("instances %s did not join the group within %.1f s" % (missing, timeout))
                try:
                    connection = accept(listener, timeout=remaining)
                except MeshError:
                    continue
                member = bytes(connection.recv(timeout=remaining)).decode()
                if member not in self.ids or member in self.peers or member == self.me:
                    connection.close()
                    continue
                self.peers[member] = connection
        except BaseException:
            self.close()
            raise
        finally:
            listener.close()

    def _recv(self, member, timeout):
        try:
            return self.peers[member].recv(timeout=timeout)
        except socket.timeout:
            raise MeshError("instance %s did not answer within %.1f s" % (member, timeout))
        except (OSError, MeshError) as error:
            raise MeshError("instance %s is gone: %s" % (member, error))

    def _send(self, member, data):
        try:
            self.peers[member].send(data)
        except OSError as error:
            raise MeshError("cannot send to instance %s: %s" % (member, error))

    def _guard(self, operation):
        try:
            return operation()
        except MeshError:
            self.close()  # the others see the group end instead of waiting for us
            raise

    def broadcast(self, data=None, timeout=None):
        """The root's bytes, on every member."""
        timeout = timeout or self.timeout

        def run():
            if self.is_root:
                for member in self.peers:
                    self._send(member, data)
                return data
            return self._recv(self.root, timeout)
        return self._guard(run)

    def scatter(self, chunks=None, timeout=None):
        """Member i gets chunks[i] (the root passes one chunk per member, in group order)."""
        timeout = timeout or self.timeout

        def run():
            if self.is_root:
                if chunks is None or len(chunks) != len(self.ids):
                    raise MeshError("scatter needs %d chunks at the root" % len(self.ids))
                for index, member in enumerate(self.ids):
                    if member != self.me:
                        self._send(member, chunks[index])
                return chunks[self.rank]
            return self._recv(self.root, timeout)
        return self._guard(run)

    def gather(self, data, timeout=None):
        """At the root: every member's bytes in group order; elsewhere: None."""
        timeout = timeout or self.timeout

        def run():
            if self.is_root:
                return [data if member == self.me else self._recv(member, timeout) for member in self.ids]
            self._send(self.root, data)
            return None
        return self._guard(run)

    def barrier(self, timeout=None):
        """Returns once every member has reached it."""
        self.gather(b"", timeout=timeout)
        self.broadcast(b"", timeout=timeout)

    def allreduce(self, value, op=_sum, timeout=None):
        """Every member gets op folded over all members' JSON values (default: sum, elementwise for lists)."""
        gathered = self.gather(json.dumps(value).encode(), timeout=timeout)
        if self.is_root:
            values = [json.loads(bytes(item)) for item in gathered]
            result = values[0]
            for item in values[1:]:
                result = op(result, item)
            return json.loads(bytes(self.broadcast(json.dumps(result).encode(), timeout=timeout)))
        return json.loads(bytes(self.broadcast(timeout=timeout)))

    def close(self):
        for connection in self.peers.values():
            connection.close()
        self.peers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
