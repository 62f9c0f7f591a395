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

Point-to-point messages and collectives among a `Group` (broadcast, scatter, gather, allgather,
reduce, allreduce, alltoall, barrier) are described where `Group` is defined below.
"""
import concurrent.futures
import json
import os
import select
import socket
import struct
import threading
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


# (path, (inode, size, mtime), {id: ip}) of the last map file parsed by peers().
_parsed = (None, None, {})


def peers():
    """{instance id: overlay ip} of every live instance of the namespace.

    The file is parsed again only when it changed (the invoker replaces it whole, so a change
    shows as a new inode, size or mtime): members waiting for each other poll it every few
    milliseconds, and 64 of them parsing a 64-entry map 500 times a second took the CPU that
    starting the other members' containers needed."""
    global _parsed
    path = map_path()
    try:
        with open(path, "rb") as f:
            status = os.fstat(f.fileno())
            signature = (status.st_ino, status.st_size, status.st_mtime_ns)
            cached_path, cached_signature, cached = _parsed
            if cached_path == path and cached_signature == signature:
                return dict(cached)
            document = json.load(f)
        current = {str(entry["id"]): str(entry["ip"]) for entry in document.get("instances", [])}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise MeshError("the address map %s is not a WhiskMesh map: %s" % (path, error))
    _parsed = (path, signature, current)
    return dict(current)


def _poll_interval(waited, poll):
    """How long to sleep between two reads of the map after `waited` seconds: `poll` at first (a
    warm peer appears within milliseconds), then less often (a cold one takes seconds, and
    every waiting member's reads share the CPU with the containers being started)."""
    if waited < 0.1:
        return poll
    return max(poll, 0.01 if waited < 1.0 else 0.025)


def wait_for(ids, timeout=30.0, poll=0.002):
    """Waits until every id in `ids` is in the map; returns {id: ip}. Raises MeshError on timeout."""
    wanted = [str(i) for i in ids]
    started = time.monotonic()
    deadline = started + timeout
    while True:
        current = peers()
        if all(i in current for i in wanted):
            return {i: current[i] for i in wanted}
        now = time.monotonic()
        if now > deadline:
            missing = [i for i in wanted if i not in current]
            raise MeshError("instances %s did not appear in the address map within %.1f s" % (missing, timeout))
        time.sleep(min(_poll_interval(now - started, poll), max(0.0, deadline - now) + 0.001))


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
        self.send_frames((data,), timeout)

    def send_frames(self, messages, timeout=None):
        """Sends several messages in order: small ones and every header leave together in one
        write, a large payload from its own memory."""
        self._check()
        self._set_timeout(timeout)
        pending = bytearray()
        try:
            for data in messages:
                view = memoryview(data).cast("B")
                pending += _HEADER.pack(len(view))
                if len(view) <= self.COALESCE:
                    pending += view
                else:
                    self.sock.sendall(pending)
                    pending = bytearray()
                    self.sock.sendall(view)
            if pending:
                self.sock.sendall(pending)
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


def listen(port=DEFAULT_PORT, backlog=128, address=None):
    """A listening socket on this instance's overlay address (or on `address`)."""
    address = address or my_ip() or "0.0.0.0"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(backlog)
    return listener


HANDSHAKE_TIMEOUT = 5.0


def accept(listener, timeout=30.0, me=None, max_message=None):
    """The next peer that connects and completes the handshake (`connection.peer` is its ID).
    Connections that do not (a stray client, a peer that asked for another instance) are closed
    and skipped until `timeout` runs out. A connection that arrived in time gets HANDSHAKE_TIMEOUT
    for its handshake, even past `timeout` (cutting it short would fail a peer that is merely slow)."""
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
            hello = json.loads(bytes(connection.recv(timeout=HANDSHAKE_TIMEOUT)))
            if not isinstance(hello, dict) or hello.get("hello") != PROTOCOL:
                raise MeshError("not a WhiskMesh handshake")
            if me is not None and hello.get("to") not in (None, me):
                connection.send(json.dumps({"hello": PROTOCOL, "id": me, "error": "this is %s, not %s" % (me, hello.get("to"))}).encode(),
                                timeout=1.0)
                raise MeshError("a peer asked for %s" % hello.get("to"))
            connection.send(json.dumps({"hello": PROTOCOL, "id": me}).encode(), timeout=HANDSHAKE_TIMEOUT)
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
# Collectives among a group of instances, with mpi4py's names where they exist (size, rank, send,
# recv, bcast, scatter, gather, allgather, reduce, allreduce, alltoall, barrier).
#
# Every member listens on COLLECTIVE_PORT. As the group forms, every member connects to the root
# (it only needs the root's map entry, which is there first: the root is invoked first) and that
# one connection carries both directions between them, so the root waits for nobody's map entry
# and opens no connection. Other pairs connect the first time one sends to the other, so a group
# holds only the connections its algorithms use (about N log N for the tree ones, not N²); such a
# connection carries one direction: what a sends to b travels on the connection a opened, so two
# members never race to open the same one. One sender thread per group sends while the caller
# receives: ring and pipeline steps need both at once, and a send blocked on a full socket buffer
# must not stop the receive that drains the peer.
#
# A message is a head frame (tag, kind, and for arrays dtype and shape) and a payload frame.
# Payloads: bytes-like objects (sent from their memory, received as bytearray), NumPy arrays (sent
# from their memory, received straight into an array of the same dtype and shape: no copies) and
# JSON values. Tags >= 0 are the caller's (send/recv); each collective uses its own negative tag, so
# a point-to-point message that arrives during a collective waits for its recv instead of being
# mistaken for the collective's.
#
# Algorithms by size (every member decides alike, since all pass the same kind of value):
# - broadcast: below LARGE bytes along a binomial tree (log2 N steps); from LARGE on the tree only
#   announces the size and the payload is pipelined down a chain in pieces of about 1/32 of it, so
#   each link carries it once and the time is about one transfer plus (N - 2) pieces;
# - reduce/allreduce: a binomial tree for small values, JSON values and custom operations; a NumPy
#   array of LARGE bytes per member or more (N × 256 KiB) with a named operation goes round a ring
#   (reduce-scatter, then allgather): each member sends and receives 2 (N - 1) / N of the array,
#   the bandwidth optimum;
# - allgather: a ring; alltoall (the shuffle): a pairwise exchange in N - 1 steps; scatter and
#   gather: direct; barrier: dissemination (log2 N rounds).
# algorithm="star" keeps the root-centred broadcast and allreduce of earlier versions (the root
# sends N - 1 copies through its own link), for comparison.
#
# Failure: every operation has one deadline. A member that fails closes the group, so the members
# waiting on it see their connections end and fail with MeshError too, instead of waiting.

try:
    import numpy
except ImportError:  # arrays are optional: bytes and JSON values work without NumPy
    numpy = None

COLLECTIVE_PORT = 7071
_MESSAGE = struct.Struct(">qB")
_BYTES, _ARRAY, _JSON, _ANNOUNCE = 0, 1, 2, 3
_TAG_BARRIER, _TAG_BCAST, _TAG_SCATTER, _TAG_GATHER, _TAG_ALLGATHER, _TAG_REDUCE, _TAG_RING, _TAG_ALLTOALL = range(-1, -9, -1)
_UFUNCS = {"sum": "add", "prod": "multiply", "max": "maximum", "min": "minimum"}
_SCALAR_OPS = {"sum": lambda a, b: a + b, "prod": lambda a, b: a * b, "max": max, "min": min}


def _array_bytes(array):
    """A flat byte view of a C-contiguous array (no copy)."""
    return memoryview(array.reshape(-1).view(numpy.uint8))


def _is_array(value):
    return numpy is not None and isinstance(value, numpy.ndarray)


def _encode(tag, value):
    """(head, payload) of one message."""
    if isinstance(value, _Announce):
        return _MESSAGE.pack(tag, _ANNOUNCE) + json.dumps(value.fields).encode(), b""
    if _is_array(value):
        if value.dtype.hasobject:
            raise MeshError("arrays of Python objects cannot be sent: use a numeric dtype or JSON values")
        array = numpy.ascontiguousarray(value)
        descr = {"dtype": array.dtype.str, "shape": list(array.shape)}
        return _MESSAGE.pack(tag, _ARRAY) + json.dumps(descr).encode(), _array_bytes(array)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _MESSAGE.pack(tag, _BYTES), memoryview(value).cast("B")
    try:
        return _MESSAGE.pack(tag, _JSON), json.dumps(value).encode()
    except (TypeError, ValueError) as error:
        raise MeshError("cannot send a %s: send bytes, a NumPy array or a JSON value (%s)" % (type(value).__name__, error))


class _Announce:
    """What a large broadcast sends along its tree before the payload goes down the chain."""

    def __init__(self, fields):
        self.fields = fields

    @classmethod
    def of(cls, value):
        if _is_array(value):
            return cls({"kind": _ARRAY, "dtype": value.dtype.str, "shape": list(value.shape), "nbytes": value.nbytes})
        return cls({"kind": _BYTES, "nbytes": memoryview(value).nbytes})

    def buffer(self):
        """(the value to return, its bytes to receive into)."""
        if self.fields["kind"] == _ARRAY:
            if numpy is None:
                raise MeshError("a NumPy array is broadcast but NumPy is not installed here")
            array = numpy.empty(self.fields["shape"], numpy.dtype(self.fields["dtype"]))
            return array, _array_bytes(array)
        data = bytearray(self.fields["nbytes"])
        return data, memoryview(data)


def _combiner(op):
    """A function (a, b) -> a op b for `op`: a callable, or "sum", "prod", "max", "min" (NumPy
    arrays elementwise; lists of numbers elementwise; numbers)."""
    if callable(op):
        return op
    if op not in _SCALAR_OPS:
        raise MeshError("unknown reduction %r: use sum, prod, max, min or a function" % (op,))
    scalar = _SCALAR_OPS[op]

    def combine(a, b):
        if _is_array(a) or _is_array(b):
            return getattr(numpy, _UFUNCS[op])(a, b)
        if isinstance(a, list):
            return [combine(x, y) for x, y in zip(a, b)]
        return scalar(a, b)
    return combine


class Group:
    """A group of instances that run collective operations together. Every member creates it with
    the same ids (in the same order: that order gives the ranks); the constructor returns once every
    member is there. `root` is the default root of broadcast, scatter, gather and reduce.

    A group is used from one thread. `me` and `address` (the address to listen on) default to this
    instance's ID and overlay address."""

    LARGE = 256 << 10
    CHUNK = 512 << 10
    MAX_CHUNK = 4 << 20

    def __init__(self, ids, root=None, port=COLLECTIVE_PORT, timeout=30.0, me=None, address=None):
        self.ids = [str(i) for i in ids]
        if len(set(self.ids)) != len(self.ids):
            raise MeshError("group members must be distinct: %s" % self.ids)
        self.me = my_id() if me is None else str(me)
        if self.me not in self.ids:
            raise MeshError("this instance (%s) is not in the group %s" % (self.me, self.ids))
        self.root = str(root) if root is not None else self.ids[0]
        if self.root not in self.ids:
            raise MeshError("the root %s is not in the group" % self.root)
        self.size = len(self.ids)
        self.rank = self.ids.index(self.me)
        self.port = port
        self.timeout = timeout
        self._ranks = {member: index for index, member in enumerate(self.ids)}
        self._outgoing = {}  # rank -> Connection this member opened; only the sender thread uses it
        self._incoming = {}  # rank -> Connection that member opened to this one
        self._early = {}  # rank -> [(tag, value)] received while waiting for another tag
        self._condition = threading.Condition()
        self._closed = False
        self._listener = None
        self._sender = None
        if self.size == 1:
            return
        deadline = time.monotonic() + timeout
        try:
            self._listener = listen(port, address=address)
            self._sender = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="whiskmesh-send")
            threading.Thread(target=self._accept_loop, name="whiskmesh-accept", daemon=True).start()
            self._join(deadline)
        except BaseException:
            self.close()
            raise

    def _join(self, deadline):
        """Every member connects to the root and says so; the root answers each once all are there
        (or tells them who did not come). The root's connections exist from then on: scatter,
        gather and the root's broadcasts use them, and their cost stays out of the first operation."""
        root = self._ranks[self.root]
        if self.rank == root:
            members = [member for member in range(self.size) if member != root]
            try:
                for member in members:
                    self._recv(member, _TAG_BARRIER, deadline)
            except MeshTimeout:
                missing = [self.ids[member] for member in members if member not in self._incoming]
                if not missing:
                    raise
                error = MeshError("instances %s did not join the group within %.1f s" % (missing, self.timeout))
                # The members that came learn why instead of seeing the root go away.
                notices = [self._post(member, {"error": str(error)}, _TAG_BARRIER, time.monotonic() + 1.0)
                           for member in members if member in self._incoming]
                concurrent.futures.wait(notices, timeout=1.0)
                raise error
            self._wait([self._post(member, b"", _TAG_BARRIER, deadline) for member in members], deadline)
        else:
            try:
                connection = connect(self.ids[root], port=self.port, timeout=self._left(deadline), me=self.me)
            except MeshError:
                if self.ids[root] in peers():
                    raise
                raise MeshError("instances %s did not join the group within %.1f s" % ([self.ids[root]], self.timeout))
            self._pair(root, connection)
            self._send(root, b"", _TAG_BARRIER, deadline)
            # The root answers by its deadline; a second more lets its word on who did not come
            # arrive rather than this member's own timeout.
            answer = self._recv(root, _TAG_BARRIER, deadline + 1.0)
            if isinstance(answer, dict) and "error" in answer:
                raise MeshError(str(answer["error"]))

    def _pair(self, rank, connection):
        """Uses `connection` (to or from the member of rank `rank`) for both directions: this side
        receives on it and sends on a duplicate of its socket, a Python socket object of its own, so
        the sender thread's timeouts never change the receiver's."""
        sender = Connection(connection.sock.dup(), max_message=connection.max_message, peer=connection.peer)
        with self._condition:
            if self._closed:
                connection.close()
                sender.close()
                raise MeshError("the group is closed")
            self._incoming[rank] = connection
            self._outgoing[rank] = sender
            self._condition.notify_all()

    @property
    def is_root(self):
        return self.me == self.root

    def _rank_of(self, root):
        """A root given as an instance ID (str), a rank (int) or None (the group's root)."""
        if root is None:
            return self._ranks[self.root]
        if isinstance(root, int):
            if not 0 <= root < self.size:
                raise MeshError("rank %d is not in a group of %d" % (root, self.size))
            return root
        if str(root) not in self._ranks:
            raise MeshError("%s is not in the group" % root)
        return self._ranks[str(root)]

    # -- connections and messages ----------------------------------------------------------------

    def _accept_loop(self):
        listener = self._listener
        while not self._closed:
            try:
                connection = accept(listener, timeout=1.0, me=self.me)
            except MeshTimeout:
                continue
            except (MeshError, OSError):
                if self._closed:
                    return
                continue
            rank = self._ranks.get(connection.peer)
            with self._condition:
                if self._closed or rank is None or rank == self.rank or rank in self._incoming:
                    connection.close()
                    continue
                if self.rank != self._ranks[self.root]:
                    self._incoming[rank] = connection
                    self._condition.notify_all()
                    continue
            # At the root, a member's connection carries both directions (see _join).
            try:
                self._pair(rank, connection)
            except MeshError:
                return

    @staticmethod
    def _left(deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MeshTimeout("the operation's deadline passed")
        return remaining

    # A member that sent its last message and left may close before this member's accept loop
    # has registered the connection that message came on: its going is final only when that
    # connection has not shown up this long after.
    _GONE_GRACE = 2.0

    def _incoming_from(self, rank, deadline):
        gone_since = None
        with self._condition:
            while rank not in self._incoming:
                if self._closed:
                    raise MeshError("the group is closed")
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    raise MeshTimeout("instance %s did not connect before the operation's deadline" % self.ids[rank])
                if gone_since is None and self._gone(rank):
                    gone_since = now
                if gone_since is not None and now - gone_since >= self._GONE_GRACE:
                    raise MeshError("instance %s is gone (it closed the connection this member opened to it)" % self.ids[rank])
                self._condition.wait(min(remaining, 0.05 if gone_since is not None else 0.5))
            return self._incoming[rank]

    def _gone(self, rank):
        """Whether the member of rank `rank` closed the connection this member opened to it: nothing
        is ever sent back on it, so anything readable there is its end (EOF or a reset)."""
        connection = self._outgoing.get(rank)
        if connection is None or connection.broken:
            return False
        try:
            # poll, not select: select() refuses descriptors above 1024. Python's recv waits for
            # the socket's timeout before it reads, so it only runs once poll says "readable".
            poller = select.poll()
            poller.register(connection.sock, select.POLLIN)
            if not poller.poll(0):
                return False
            return connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True  # reset, or closed under us

    def _post(self, rank, value, tag, deadline):
        """Queues `value` for the member of rank `rank`; returns a Future. The value's memory must
        stay unchanged until the future is done."""
        head, payload = _encode(tag, value)

        def send():
            try:
                connection = self._outgoing.get(rank)
                if connection is None:
                    connection = connect(self.ids[rank], port=self.port, timeout=self._left(deadline), me=self.me)
                    self._outgoing[rank] = connection
                connection.send_frames((head, payload), timeout=self._left(deadline))
            except MeshTimeout:
                raise MeshTimeout("sending to instance %s did not finish before the operation's deadline" % self.ids[rank])
            except (OSError, MeshError) as error:
                raise MeshError("cannot send to instance %s: %s" % (self.ids[rank], error))
        if self._sender is None or self._closed:
            raise MeshError("the group is closed")
        return self._sender.submit(send)

    def _wait(self, futures, deadline):
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                raise MeshTimeout("a send did not finish before the operation's deadline")
            except concurrent.futures.CancelledError:
                raise MeshError("the group is closed")

    def _send(self, rank, value, tag, deadline):
        self._wait([self._post(rank, value, tag, deadline)], deadline)

    def _recv(self, rank, tag, deadline, into=None):
        """The next message with `tag` from the member of rank `rank` (into `into` when given: a
        writable buffer, or an array of the message's dtype and size)."""
        early = self._early.get(rank)
        if early:
            for index, (got, value) in enumerate(early):
                if got == tag:
                    del early[index]
                    return value if into is None else self._copy_into(value, into)
        member = self.ids[rank]
        try:
            connection = self._incoming_from(rank, deadline)
            while True:
                head = connection.recv(timeout=self._left(deadline))
                if len(head) < _MESSAGE.size:
                    raise MeshError("a message head of %d bytes is too short" % len(head))
                got, kind = _MESSAGE.unpack_from(head)
                value = self._payload(connection, kind, head[_MESSAGE.size:], deadline, into if got == tag else None)
                if got == tag:
                    return value
                self._early.setdefault(rank, []).append((got, value))
        except MeshTimeout:
            raise MeshTimeout("instance %s did not send before the operation's deadline" % member)
        except (OSError, ValueError, MeshError) as error:
            raise MeshError("receiving from instance %s: %s" % (member, error))

    @staticmethod
    def _copy_into(value, into):
        """What receiving `value` straight into `into` would have returned (it arrived early)."""
        if _is_array(value) and _is_array(into) and into.dtype == value.dtype and into.size == value.size:
            into.reshape(-1)[:] = value.reshape(-1)
            return into
        source = _array_bytes(value) if _is_array(value) else memoryview(value).cast("B")
        target = memoryview(into).cast("B")
        if len(target) < len(source):
            raise MeshError("a message of %d bytes does not fit the %d-byte buffer" % (len(source), len(target)))
        target[:len(source)] = source
        return target[:len(source)]

    def _payload(self, connection, kind, extra, deadline, into):
        if kind == _BYTES:
            return connection.recv(timeout=self._left(deadline), into=into)
        if kind == _JSON:
            return json.loads(connection.recv(timeout=self._left(deadline)))
        if kind == _ANNOUNCE:
            connection.recv(timeout=self._left(deadline))
            return _Announce(json.loads(bytes(extra)))
        if kind == _ARRAY:
            if numpy is None:
                raise MeshError("a NumPy array arrived but NumPy is not installed here")
            descr = json.loads(bytes(extra))
            dtype, shape = numpy.dtype(descr["dtype"]), tuple(descr["shape"])
            if _is_array(into) and into.dtype == dtype and into.size == int(numpy.prod(shape)) and into.flags.c_contiguous:
                array = into
            else:
                array = numpy.empty(shape, dtype)
            view = _array_bytes(array)
            received = connection.recv(timeout=self._left(deadline), into=view)
            if len(received) != len(view):
                raise MeshError("an array of %d bytes arrived with %d" % (len(view), len(received)))
            return array if array is into else array.reshape(shape)
        raise MeshError("a message of unknown kind %d" % kind)

    def _guard(self, operation, timeout):
        """Runs operation(deadline): one deadline for the whole operation, whatever the group's size."""
        if self._closed:
            raise MeshError("the group is closed")
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            return operation(deadline)
        except MeshError:
            self.close()  # the others see the group end instead of waiting for us
            raise

    # -- algorithms (each takes the operation's deadline) -----------------------------------------

    def _dissemination(self, tag, deadline):
        distance = 1
        while distance < self.size:
            sent = self._post((self.rank + distance) % self.size, b"", tag, deadline)
            self._recv((self.rank - distance) % self.size, tag, deadline)
            self._wait([sent], deadline)
            distance <<= 1

    def _tree_bcast(self, value, root, tag, deadline):
        """Binomial tree: the member at distance d from the root receives from d minus its lowest
        set bit and forwards to d + each lower power of two."""
        relative = (self.rank - root) % self.size
        mask = 1
        while mask < self.size:
            if relative & mask:
                value = self._recv((self.rank - mask) % self.size, tag, deadline)
                break
            mask <<= 1
        mask >>= 1
        sends = []
        while mask > 0:
            if relative + mask < self.size:
                sends.append(self._post((self.rank + mask) % self.size, value, tag, deadline))
            mask >>= 1
        self._wait(sends, deadline)
        return value

    def _chain(self, view, root, tag, deadline):
        """Pipelines `view` from the root down the chain root, root+1, ...: each member forwards a
        chunk while it receives the next."""
        relative = (self.rank - root) % self.size
        previous = (self.rank - 1) % self.size if relative > 0 else None
        following = (self.rank + 1) % self.size if relative < self.size - 1 else None
        # About 32 pieces (so filling the chain costs N/32 of the transfer), each 512 KiB .. 4 MiB
        # (below, the per-piece work shows; above, the chain fills slowly). Every member computes
        # the same from the announced size.
        chunk = min(self.MAX_CHUNK, max(self.CHUNK, len(view) // 32))
        sends = []
        for offset in range(0, len(view), chunk):
            piece = view[offset:offset + chunk]
            if previous is not None:
                self._recv(previous, tag, deadline, into=piece)
            if following is not None:
                sends.append(self._post(following, piece, tag, deadline))
        self._wait(sends, deadline)

    def _bcast(self, value, root, deadline, algorithm=None):
        if self.size == 1:
            return value
        if algorithm == "star":
            if self.rank == root:
                self._wait([self._post(member, value, _TAG_BCAST, deadline) for member in range(self.size) if member != root], deadline)
                return value
            return self._recv(root, _TAG_BCAST, deadline)
        large = self.rank == root and (_is_array(value) or isinstance(value, (bytes, bytearray, memoryview))) \
            and memoryview(value).nbytes >= self.LARGE and self.size > 2 and algorithm != "tree"
        received = self._tree_bcast(_Announce.of(value) if large else value, root, _TAG_BCAST, deadline)
        if not isinstance(received, _Announce):
            return received
        if self.rank == root:
            self._chain(_array_bytes(numpy.ascontiguousarray(value)) if _is_array(value) else memoryview(value).cast("B"),
                        root, _TAG_BCAST, deadline)
            return value
        result, view = received.buffer()
        self._chain(view, root, _TAG_BCAST, deadline)
        return result

    def _tree_reduce(self, value, combine, root, deadline):
        """Binomial tree towards the root; None except at the root."""
        relative = (self.rank - root) % self.size
        mask = 1
        while mask < self.size:
            if relative & mask:
                self._send((self.rank - mask) % self.size, value, _TAG_REDUCE, deadline)
                return None
            if relative + mask < self.size:
                value = combine(value, self._recv((self.rank + mask) % self.size, _TAG_REDUCE, deadline))
            mask <<= 1
        return value

    def _ring_reduce_scatter(self, work, ufunc, deadline):
        """Ring reduce-scatter over the flat array `work` (in place): afterwards segment
        (rank + 1) % size holds the reduction of every member's segment. Returns the bounds."""
        n = self.size
        bounds = [len(work) * i // n for i in range(n + 1)]
        segment = lambda i: work[bounds[i % n]:bounds[i % n + 1]]  # noqa: E731
        right, left = (self.rank + 1) % n, (self.rank - 1) % n
        scratch = numpy.empty(max(bounds[i + 1] - bounds[i] for i in range(n)), work.dtype)
        for step in range(n - 1):
            sent = self._post(right, _array_bytes(segment(self.rank - step)), _TAG_RING, deadline)
            target = segment(self.rank - step - 1)
            incoming = scratch[:len(target)]
            self._recv(left, _TAG_RING, deadline, into=_array_bytes(incoming))
            ufunc(target, incoming, out=target)
            self._wait([sent], deadline)
        return segment

    def _ring_allgather_segments(self, segment, deadline):
        n = self.size
        right, left = (self.rank + 1) % n, (self.rank - 1) % n
        for step in range(n - 1):
            sent = self._post(right, _array_bytes(segment(self.rank + 1 - step)), _TAG_RING, deadline)
            self._recv(left, _TAG_RING, deadline, into=_array_bytes(segment(self.rank - step)))
            self._wait([sent], deadline)

    def _ring_suits(self, value, op, algorithm):
        if algorithm == "ring":
            if not (_is_array(value) and op in _UFUNCS):
                raise MeshError("the ring needs a NumPy array and one of %s" % sorted(_UFUNCS))
            return True
        # The ring takes 2 (N - 1) steps of one N-th of the array each: worth it once that N-th is
        # LARGE, else the per-step latency outweighs the bandwidth it saves (measured: 32 members
        # × 1 MiB took 271-339 ms round a ring of 32 KiB steps, 52 ms through the root).
        return (algorithm is None and _is_array(value) and not callable(op) and op in _UFUNCS
                and value.nbytes >= self.LARGE * self.size and self.size > 2 and value.size >= self.size)

    # -- public operations -----------------------------------------------------------------------

    def send(self, data, dest, tag=0, timeout=None):
        """Sends bytes, an array or a JSON value to the member of rank `dest` (an int) or ID (a str)."""
        if tag < 0:
            raise MeshError("tags below 0 are the collectives'")
        rank = self._rank_of(dest)
        if rank == self.rank:
            raise MeshError("a member cannot send to itself")
        self._guard(lambda deadline: self._send(rank, data, tag, deadline), timeout)

    def recv(self, source, tag=0, timeout=None, into=None):
        """The next message with `tag` from the member `source` (rank or ID). `into`: a writable
        buffer or array to receive bytes or an array into (a memoryview of it comes back)."""
        if tag < 0:
            raise MeshError("tags below 0 are the collectives'")
        rank = self._rank_of(source)
        if rank == self.rank:
            raise MeshError("a member cannot receive from itself")
        return self._guard(lambda deadline: self._recv(rank, tag, deadline, into=into), timeout)

    def broadcast(self, data=None, root=None, timeout=None, algorithm=None):
        """The root's bytes, array or JSON value, on every member. algorithm: None (by size),
        "tree" or "star"."""
        root = self._rank_of(root)
        return self._guard(lambda deadline: self._bcast(data, root, deadline, algorithm), timeout)

    bcast = broadcast

    def scatter(self, chunks=None, root=None, timeout=None):
        """Member i gets chunks[i] (the root passes one chunk per member, in rank order)."""
        root = self._rank_of(root)

        def run(deadline):
            if self.rank == root:
                if chunks is None or len(chunks) != self.size:
                    raise MeshError("scatter needs %d chunks at the root" % self.size)
                self._wait([self._post(member, chunks[member], _TAG_SCATTER, deadline)
                            for member in range(self.size) if member != root], deadline)
                return chunks[root]
            return self._recv(root, _TAG_SCATTER, deadline)
        return self._guard(run, timeout)

    def gather(self, data, root=None, timeout=None):
        """At the root: every member's value in rank order; elsewhere: None."""
        root = self._rank_of(root)

        def run(deadline):
            if self.rank == root:
                return [data if member == root else self._recv(member, _TAG_GATHER, deadline) for member in range(self.size)]
            self._send(root, data, _TAG_GATHER, deadline)
            return None
        return self._guard(run, timeout)

    def allgather(self, data, timeout=None):
        """Every member's value, in rank order, on every member (a ring: N - 1 steps)."""
        def run(deadline):
            blocks = [None] * self.size
            blocks[self.rank] = data
            right, left = (self.rank + 1) % self.size, (self.rank - 1) % self.size
            for step in range(self.size - 1):
                sent = self._post(right, blocks[(self.rank - step) % self.size], _TAG_ALLGATHER, deadline)
                blocks[(self.rank - step - 1) % self.size] = self._recv(left, _TAG_ALLGATHER, deadline)
                self._wait([sent], deadline)
            return blocks
        return self._guard(run, timeout)

    def alltoall(self, chunks, timeout=None):
        """The shuffle: member i sends chunks[j] to member j and gets, in rank order, what every
        member had for it (a pairwise exchange: in step k, send to rank + k, receive from rank - k)."""
        if chunks is None or len(chunks) != self.size:
            raise MeshError("alltoall needs %d chunks, one per member" % self.size)

        def run(deadline):
            received = [None] * self.size
            received[self.rank] = chunks[self.rank]
            for step in range(1, self.size):
                target, source = (self.rank + step) % self.size, (self.rank - step) % self.size
                sent = self._post(target, chunks[target], _TAG_ALLTOALL, deadline)
                received[source] = self._recv(source, _TAG_ALLTOALL, deadline)
                self._wait([sent], deadline)
            return received
        return self._guard(run, timeout)

    def reduce(self, value, op="sum", root=None, timeout=None):
        """At the root: op folded over every member's value (bytes excepted); elsewhere None.
        op: "sum" (default), "prod", "max", "min" (NumPy arrays and lists elementwise) or a function
        of two values (assumed associative and commutative)."""
        root = self._rank_of(root)
        combine = _combiner(op)

        def run(deadline):
            if self._ring_suits(value, op, None):
                work = numpy.array(value, copy=True).reshape(-1)
                segment = self._ring_reduce_scatter(work, getattr(numpy, _UFUNCS[op]), deadline)
                # Each member holds one reduced segment; the root collects them.
                owned = (self.rank + 1) % self.size
                if self.rank != root:
                    self._send(root, segment(owned), _TAG_GATHER, deadline)
                    return None
                for member in range(self.size):
                    if member != root:
                        self._recv(member, _TAG_GATHER, deadline, into=segment((member + 1) % self.size))
                return work.reshape(value.shape)
            return self._tree_reduce(value, combine, root, deadline)
        return self._guard(run, timeout)

    def allreduce(self, value, op="sum", timeout=None, algorithm=None):
        """op folded over every member's value, on every member. algorithm: None (by size and
        type: a ring for large arrays), "ring", "tree" or "star"."""
        combine = _combiner(op)

        def run(deadline):
            if self.size == 1:
                return value
            if algorithm == "star":
                root = self._ranks[self.root]
                result = None
                if self.rank == root:  # folds each value as it arrives: two values in memory, not N
                    for member in range(self.size):
                        item = value if member == root else self._recv(member, _TAG_GATHER, deadline)
                        result = item if member == 0 else combine(result, item)
                else:
                    self._send(root, value, _TAG_GATHER, deadline)
                return self._bcast(result, root, deadline, "star")
            if self._ring_suits(value, op, algorithm):
                work = numpy.array(value, copy=True).reshape(-1)
                segment = self._ring_reduce_scatter(work, getattr(numpy, _UFUNCS[op]), deadline)
                self._ring_allgather_segments(segment, deadline)
                return work.reshape(value.shape)
            reduced = self._tree_reduce(value, combine, 0, deadline)
            return self._bcast(reduced, 0, deadline, "tree" if algorithm == "tree" else None)
        return self._guard(run, timeout)

    def barrier(self, timeout=None):
        """Returns once every member has reached it."""
        if self.size > 1:
            self._guard(lambda deadline: self._dissemination(_TAG_BARRIER, deadline), timeout)

    def close(self):
        with self._condition:
            self._closed = True
            connections = list(self._incoming.values()) + list(self._outgoing.values())
            self._incoming, self._outgoing = {}, {}
            self._condition.notify_all()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        for connection in connections:
            connection.close()
        if self._sender is not None:
            self._sender.shutdown(wait=False, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
