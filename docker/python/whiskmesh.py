"""WhiskMesh SDK: find other function instances of your namespace and message them directly.

The address map is a JSON file (schema "whiskmesh.addressmap/v1") that the invoker replaces
atomically, so every read sees a whole map:

    {"schema": "whiskmesh.addressmap/v1", "namespace": "guest", "version": 12,
     "instances": [{"id": "a", "ip": "10.130.0.5", "invoker": 0, "activationId": "..."}]}

Messages are framed with an 8-byte big-endian length. Receiving reads straight into one
buffer of the final size (no quadratic growth), sending writes from a memoryview (no copies).

Failure modes, so that a caller never reads garbage or waits without end:
- `connect(peer)` and `accept()` start with a handshake that carries both instance IDs, so a
  connection reaches the instance it asked for (an address reused after the peer died fails with
  MeshError instead of reaching a stranger);
- a frame announcing more than `max_message` bytes (WHISKMESH_MAX_MESSAGE, default 1 GiB) is
  refused before anything is allocated;
- a timeout or error in the middle of a frame marks the connection broken: every later call fails
  at once with MeshError (a timeout before the first byte of a frame leaves it usable);
- a collective operation has one deadline for the whole operation, not one per socket call.
"""
import json
import os
import socket
import struct
import time

DEFAULT_PORT = 7070
_HEADER = struct.Struct(">Q")
PROTOCOL = "whiskmesh/1"
# The handshake's frames are small JSON objects; anything longer is not a WhiskMesh peer.
_HELLO_LIMIT = 4096


def default_max_message():
    """The longest frame a connection accepts unless told otherwise (WHISKMESH_MAX_MESSAGE)."""
    try:
        return int(os.environ.get("WHISKMESH_MAX_MESSAGE", 1 << 30))
    except ValueError:
        return 1 << 30


class MeshError(Exception):
    """A peer is missing, unreachable or gone, or a connection can no longer be used."""


class MeshTimeout(MeshError, TimeoutError):
    """A deadline passed (also a `socket.timeout`, so older `except socket.timeout` still works)."""


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
    """A framed, bidirectional message stream to one peer (`peer` is its instance ID when the
    connection came from `connect` or `accept`)."""

    # Below this size the header and the payload leave in one write (one segment with
    # TCP_NODELAY, one wake-up at the peer); above it the payload is sent from its own memory.
    COALESCE = 64 << 10

    def __init__(self, sock, max_message=None, peer=None):
        self.sock = sock
        self.peer = peer
        self.max_message = default_max_message() if max_message is None else max_message
        self._broken = None  # why the stream can no longer be used, once it cannot
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

    @property
    def broken(self):
        """Why this connection can no longer be used, or None."""
        return self._broken

    def _check(self):
        if self._broken is not None:
            raise MeshError("connection to %s is broken: %s" % (self.peer or "peer", self._broken))

    def _break(self, error):
        """Marks the stream unusable and returns the MeshError to raise for `error`."""
        self._broken = str(error) or type(error).__name__
        self.close()
        if isinstance(error, MeshError):
            return error
        if isinstance(error, TimeoutError):
            return MeshTimeout("timed out in the middle of a message to or from %s" % (self.peer or "peer"))
        return MeshError("connection to %s failed: %s" % (self.peer or "peer", error))

    def _set_timeout(self, timeout):
        if timeout != self._timeout:
            self.sock.settimeout(timeout)  # a system call: only when the timeout changes
            self._timeout = timeout

    def send(self, data, timeout=None):
        """Sends one message; a timeout or error leaves the peer with part of a frame, so it
        breaks the connection."""
        self._check()
        view = memoryview(data).cast("B")
        header = _HEADER.pack(len(view))
        self._set_timeout(timeout)
        try:
            if len(view) <= self.COALESCE:
                self.sock.sendall(header + view)
            else:
                self.sock.sendall(header)
                self.sock.sendall(view)
        except OSError as error:
            raise self._break(error) from error

    def recv(self, timeout=None, into=None):
        """One whole message: a new bytearray, or, when `into` (a writable buffer at least as large
        as the message) is given, a memoryview of the message received into it (no allocation).

        Reads go through a 64 KiB staging buffer, so a small message and its header usually take
        one system call; the body of a large one is received straight into its destination.

        A timeout before the whole header arrived leaves the connection usable (what came is
        kept); any failure after that breaks it."""
        self._check()
        self._set_timeout(timeout)
        try:
            self._fill(_HEADER.size)
        except TimeoutError as error:
            raise MeshTimeout("no message from %s within %s s" % (self.peer or "peer", timeout)) from error
        except (OSError, MeshError) as error:
            raise self._break(error) from error
        (length,) = _HEADER.unpack_from(self._stage, self._start)
        self._start += _HEADER.size
        if length > self.max_message:
            raise self._break(MeshError("a message of %d bytes was announced, more than the limit of %d: "
                                        "not a WhiskMesh peer, or raise max_message" % (length, self.max_message)))
        try:
            return self._body(length, into)
        except (OSError, MeshError) as error:
            raise self._break(error) from error

    def _body(self, length, into):
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
        if self._broken is None:
            self._broken = "closed"
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _hello(connection, deadline, fields):
    """Sends this side's handshake frame and returns the other side's (a dict)."""
    connection.send(json.dumps(dict(fields, hello=PROTOCOL)).encode(), timeout=max(0.01, deadline - time.monotonic()))
    try:
        reply = json.loads(bytes(connection.recv(timeout=max(0.01, deadline - time.monotonic()))))
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or reply.get("hello") != PROTOCOL:
        raise MeshError("the other side did not answer the WhiskMesh handshake: not a WhiskMesh peer")
    return reply


def listen(port=DEFAULT_PORT, backlog=128):
    """A listening socket on this instance's overlay address."""
    address = my_ip() or "0.0.0.0"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(backlog)
    return listener


def accept(listener, timeout=30.0, me=None, max_message=None):
    """The next peer that connects and completes the handshake (`connection.peer` is its ID).
    Connections that do not (a stray client, a peer that asked for another instance) are closed
    and skipped until `timeout` runs out."""
    me = my_id() if me is None else str(me)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MeshTimeout("no peer connected within %.1f s" % timeout)
        listener.settimeout(remaining)
        try:
            sock, _ = listener.accept()
        except socket.timeout:
            continue
        connection = Connection(sock, max_message=_HELLO_LIMIT)
        try:
            hello = json.loads(bytes(connection.recv(timeout=min(5.0, max(0.01, deadline - time.monotonic())))))
            if not isinstance(hello, dict) or hello.get("hello") != PROTOCOL:
                raise MeshError("not a WhiskMesh handshake")
            if me is not None and hello.get("to") not in (None, me):
                connection.send(json.dumps({"hello": PROTOCOL, "id": me, "error": "this is %s, not %s" % (me, hello.get("to"))}).encode(),
                                timeout=1.0)
                raise MeshError("a peer asked for %s" % hello.get("to"))
            connection.send(json.dumps({"hello": PROTOCOL, "id": me}).encode(), timeout=min(5.0, max(0.01, deadline - time.monotonic())))
        except (MeshError, OSError, ValueError):
            connection.close()
            continue
        connection.peer = hello.get("from")
        connection.max_message = default_max_message() if max_message is None else max_message
        connection._set_timeout(None)
        return connection


def connect(peer_id, port=DEFAULT_PORT, timeout=30.0, me=None, max_message=None):
    """Connects to instance `peer_id`, waiting for it to appear in the map and to listen, and
    checks in a handshake that the instance answering at its address is `peer_id`."""
    peer_id = str(peer_id)
    me = my_id() if me is None else str(me)
    deadline = time.monotonic() + timeout
    ip = wait_for([peer_id], timeout=timeout)[peer_id]
    last_error = None
    while time.monotonic() < deadline:
        try:
            sock = socket.create_connection((ip, port), timeout=max(0.1, deadline - time.monotonic()))
        except OSError as error:
            last_error = error
            time.sleep(0.01)
            ip = peers().get(peer_id, ip)
            continue
        connection = Connection(sock, max_message=_HELLO_LIMIT, peer=peer_id)
        try:
            reply = _hello(connection, deadline, {"from": me, "to": peer_id})
        except MeshError as error:
            connection.close()
            raise MeshError("instance %s at %s:%d: %s" % (peer_id, ip, port, error))
        if reply.get("id") != peer_id:
            connection.close()
            raise MeshError("%s:%d is instance %s, not %s (the address was reused?)" % (ip, port, reply.get("id"), peer_id))
        connection.max_message = default_max_message() if max_message is None else max_message
        connection._set_timeout(None)
        return connection
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
            self.peers[self.root] = connect(self.root, port=port, timeout=timeout, me=self.me)

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
                    connection = accept(listener, timeout=remaining, me=self.me)
                except MeshError:
                    continue
                member = connection.peer
                if member not in self.ids or member in self.peers or member == self.me:
                    connection.close()
                    continue
                self.peers[member] = connection
        except BaseException:
            self.close()
            raise
        finally:
            listener.close()

    @staticmethod
    def _left(deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MeshTimeout("the operation's deadline passed")
        return remaining

    def _recv(self, member, deadline):
        try:
            return self.peers[member].recv(timeout=self._left(deadline))
        except MeshTimeout:
            raise MeshTimeout("instance %s did not answer before the operation's deadline" % member)
        except (OSError, MeshError) as error:
            raise MeshError("instance %s is gone: %s" % (member, error))

    def _send(self, member, data, deadline):
        try:
            self.peers[member].send(data, timeout=self._left(deadline))
        except (OSError, MeshError) as error:
            raise MeshError("cannot send to instance %s: %s" % (member, error))

    def _guard(self, operation, timeout):
        """Runs operation(deadline): one deadline for the whole operation, whatever the group's size."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            return operation(deadline)
        except MeshError:
            self.close()  # the others see the group end instead of waiting for us
            raise

    # Each operation is a `run(deadline)` for `_guard`; barrier and allreduce chain two of them
    # under one deadline.

    def _broadcast(self, data, deadline):
        if self.is_root:
            for member in self.peers:
                self._send(member, data, deadline)
            return data
        return self._recv(self.root, deadline)

    def _gather(self, data, deadline):
        if self.is_root:
            return [data if member == self.me else self._recv(member, deadline) for member in self.ids]
        self._send(self.root, data, deadline)
        return None

    def broadcast(self, data=None, timeout=None):
        """The root's bytes, on every member."""
        return self._guard(lambda deadline: self._broadcast(data, deadline), timeout)

    def scatter(self, chunks=None, timeout=None):
        """Member i gets chunks[i] (the root passes one chunk per member, in group order)."""
        def run(deadline):
            if self.is_root:
                if chunks is None or len(chunks) != len(self.ids):
                    raise MeshError("scatter needs %d chunks at the root" % len(self.ids))
                for index, member in enumerate(self.ids):
                    if member != self.me:
                        self._send(member, chunks[index], deadline)
                return chunks[self.rank]
            return self._recv(self.root, deadline)
        return self._guard(run, timeout)

    def gather(self, data, timeout=None):
        """At the root: every member's bytes in group order; elsewhere: None."""
        return self._guard(lambda deadline: self._gather(data, deadline), timeout)

    def barrier(self, timeout=None):
        """Returns once every member has reached it."""
        def run(deadline):
            self._gather(b"", deadline)
            self._broadcast(b"", deadline)
        self._guard(run, timeout)

    def allreduce(self, value, op=_sum, timeout=None):
        """Every member gets op folded over all members' JSON values (default: sum, elementwise for lists)."""
        def run(deadline):
            gathered = self._gather(json.dumps(value).encode(), deadline)
            if self.is_root:
                values = [json.loads(bytes(item)) for item in gathered]
                result = values[0]
                for item in values[1:]:
                    result = op(result, item)
                return json.loads(bytes(self._broadcast(json.dumps(result).encode(), deadline)))
            return json.loads(bytes(self._broadcast(None, deadline)))
        return self._guard(run, timeout)

    def close(self):
        for connection in self.peers.values():
            connection.close()
        self.peers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
