"""Unit tests of the Python SDK's failure modes (docker/python/whiskmesh.py), over loopback
sockets and a map file in a temporary folder: no platform needed. scripts/test runs them."""
import json
import os
import socket
import struct
import sys
import threading
import time
import tracemalloc

import numpy
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "docker", "python"))
import whiskmesh  # noqa: E402
from whiskmesh import MeshError, MeshTimeout  # noqa: E402

HEADER = struct.Struct(">Q")


def tcp_pair():
    """Two ends of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        left = socket.create_connection(server.getsockname())
        right, _ = server.accept()
    return left, right


@pytest.fixture
def pair():
    """A connected Connection and the raw socket at its other end."""
    left, right = tcp_pair()
    connection = whiskmesh.Connection(left, peer="other")
    yield connection, right
    connection.close()
    right.close()


@pytest.fixture
def mesh(tmp_path, monkeypatch):
    """An address map naming instances on 127.0.0.1, and this process as instance `me`."""
    path = tmp_path / "map.json"
    monkeypatch.setenv("__OW_ADDRESS_MAP", str(path))
    monkeypatch.setenv("__OW_INSTANCE_ID", "me")
    monkeypatch.setenv("__OW_OVERLAY_IP", "127.0.0.1")

    def publish(*ids):
        entries = [{"id": i, "ip": "127.0.0.1", "invoker": 0, "activationId": "a%d" % n} for n, i in enumerate(ids)]
        tmp = tmp_path / "map.tmp"
        tmp.write_text(json.dumps({"schema": "whiskmesh.addressmap/v1", "namespace": "test", "version": 1, "instances": entries}))
        os.replace(tmp, path)
    return publish


def test_peers_sees_every_replacement_of_the_map_even_of_the_same_size(tmp_path, monkeypatch):
    """peers() parses the file again only when it changed; a replacement (new inode) of the same
    size and, within the clock's resolution, the same mtime is a change."""
    path = tmp_path / "map.json"
    monkeypatch.setenv("__OW_ADDRESS_MAP", str(path))
    assert whiskmesh.peers() == {}
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        tmp = tmp_path / "map.tmp"
        tmp.write_text(json.dumps({"instances": [{"id": "a", "ip": ip}]}))
        os.replace(tmp, path)
        assert whiskmesh.peers() == {"a": ip}
    mine = whiskmesh.peers()
    mine["b"] = "10.9.9.9"  # a caller's copy: changing it changes nothing else
    assert whiskmesh.peers() == {"a": "10.0.0.3"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"instances": [{"ip": "10.0.0.1"}]}', '{"instances": 7}'])
def test_a_malformed_map_is_a_mesh_error_not_a_crash(tmp_path, monkeypatch, content):
    path = tmp_path / "map.json"
    monkeypatch.setenv("__OW_ADDRESS_MAP", str(path))
    path.write_text(content)
    with pytest.raises(MeshError, match="not a WhiskMesh map"):
        whiskmesh.peers()
    with pytest.raises(MeshError, match="not a WhiskMesh map"):
        whiskmesh.wait_for(["a"], timeout=0.1)


def test_wait_for_polls_less_often_the_longer_it_waits():
    assert whiskmesh._poll_interval(0.0, 0.002) == 0.002
    assert whiskmesh._poll_interval(0.5, 0.002) == 0.01
    assert whiskmesh._poll_interval(5.0, 0.002) == 0.025
    assert whiskmesh._poll_interval(5.0, 0.1) == 0.1  # a caller's slower poll stays


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port, me, handler=None, timeout=5.0):
    """Accepts one handshaking peer as instance `me` on a thread; returns the thread's result list."""
    listener = whiskmesh.listen(port)
    out = []

    def run():
        try:
            connection = whiskmesh.accept(listener, timeout=timeout, me=me)
            out.append(connection)
            if handler:
                handler(connection)
        except Exception as error:  # reported to the test through `out`
            out.append(error)
        finally:
            listener.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# A connection that failed in the middle of a frame is broken for good.

def test_a_timeout_in_the_middle_of_a_frame_breaks_the_connection(pair):
    connection, raw = pair
    raw.sendall(HEADER.pack(100) + b"x" * 10)  # the header and 10 of 100 bytes
    with pytest.raises(MeshTimeout):
        connection.recv(timeout=0.2)
    assert connection.broken
    raw.sendall(b"y" * 90)
    started = time.monotonic()
    with pytest.raises(MeshError, match="broken"):
        connection.recv(timeout=5)
    with pytest.raises(MeshError, match="broken"):
        connection.send(b"hello")
    assert time.monotonic() - started < 1, "later calls fail at once"


def test_a_timeout_before_a_frame_starts_leaves_the_connection_usable(pair):
    connection, raw = pair
    with pytest.raises(MeshTimeout):
        connection.recv(timeout=0.1)
    raw.sendall(HEADER.pack(3)[:5])  # part of a header: kept, not lost
    with pytest.raises(MeshTimeout):
        connection.recv(timeout=0.1)
    assert connection.broken is None
    raw.sendall(HEADER.pack(3)[5:] + b"abc")
    assert bytes(connection.recv(timeout=2)) == b"abc"


def test_a_timeout_is_still_a_socket_timeout_for_older_callers(pair):
    connection, _ = pair
    with pytest.raises(socket.timeout):
        connection.recv(timeout=0.05)


def test_the_peer_closing_in_the_middle_of_a_frame_breaks_the_connection(pair):
    connection, raw = pair
    raw.sendall(HEADER.pack(50) + b"z" * 20)
    raw.close()
    with pytest.raises(MeshError, match="20 of 50"):
        connection.recv(timeout=2)
    with pytest.raises(MeshError, match="broken"):
        connection.recv(timeout=2)


# Frames longer than the limit are refused before anything is allocated.

def test_a_frame_over_the_limit_is_refused_before_allocating(pair):
    connection, raw = pair
    connection.max_message = 1 << 20
    raw.sendall(HEADER.pack(1 << 40))  # 1 TiB announced
    tracemalloc.start()
    try:
        with pytest.raises(MeshError, match="more than the limit"):
            connection.recv(timeout=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, "nothing near the announced size was allocated (peak %d bytes)" % peak
    assert connection.broken


def test_a_frame_at_the_limit_is_received(pair):
    connection, raw = pair
    connection.max_message = 1000
    raw.sendall(HEADER.pack(1000) + b"q" * 1000)
    assert len(connection.recv(timeout=2)) == 1000


def test_the_default_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WHISKMESH_MAX_MESSAGE", "12345")
    left, right = tcp_pair()
    try:
        assert whiskmesh.Connection(left).max_message == 12345
    finally:
        left.close()
        right.close()


# connect() reaches the instance it asked for, or fails.

def test_connect_checks_the_instance_it_reached(mesh):
    port = free_port()
    mesh("b")
    thread, out = serve(port, "b", handler=lambda c: c.send(c.recv(timeout=5)))
    with whiskmesh.connect("b", port=port, timeout=5) as connection:
        assert connection.peer == "b"
        connection.send(b"ping")
        assert bytes(connection.recv(timeout=5)) == b"ping"
    thread.join(5)
    assert out and out[0].peer == "me", "the accepting side learns who connected"


def test_connect_refuses_another_instance_at_the_peers_address(mesh):
    port = free_port()
    mesh("b")  # the map still says b, but c now answers at that address
    thread, out = serve(port, "c", timeout=2)
    with pytest.raises(MeshError, match="not b"):
        whiskmesh.connect("b", port=port, timeout=3)
    thread.join(5)


def test_connect_refuses_something_that_is_not_a_whiskmesh_peer(mesh):
    port = free_port()
    mesh("b")
    listener = socket.create_server(("127.0.0.1", port))

    def stranger():
        sock, _ = listener.accept()
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        time.sleep(0.5)
        sock.close()
    thread = threading.Thread(target=stranger, daemon=True)
    thread.start()
    try:
        with pytest.raises(MeshError, match="not a WhiskMesh peer|more than the limit"):
            whiskmesh.connect("b", port=port, timeout=3)
    finally:
        thread.join(5)
        listener.close()


def test_accept_skips_a_stray_client_and_takes_the_next_peer(mesh):
    port = free_port()
    mesh("b")
    thread, out = serve(port, "b", timeout=10)
    stray = socket.create_connection(("127.0.0.1", port))
    stray.sendall(b"GET / HTTP/1.0\r\n\r\n")
    with whiskmesh.connect("b", port=port, timeout=5) as connection:
        assert connection.peer == "b"
    thread.join(5)
    stray.close()
    assert len(out) == 1 and out[0].peer == "me"


# Framing across the 64 KiB staging buffer.

@pytest.mark.parametrize("sizes", [
    [65536 - 8, 1, 65536 - 16, 65536, 3],          # headers and bodies that end at, before and after the stage's end
    [10, 65536 - 17, 7, 200_000, 65536 + 1, 0, 5],  # a body larger than the stage between small ones
    [0] * 50 + [1 << 20] + [0] * 50,
])
def test_messages_of_every_size_cross_the_staging_buffer_intact(pair, sizes):
    connection, raw = pair
    payloads = [bytes((n * 7 + k) % 251 for k in range(n)) for n in sizes]
    stream = b"".join(HEADER.pack(len(p)) + p for p in payloads)
    sender = threading.Thread(target=raw.sendall, args=(stream,), daemon=True)
    sender.start()
    received = [bytes(connection.recv(timeout=5)) for _ in payloads]
    sender.join()
    assert received == payloads


def test_send_frames_puts_several_messages_on_the_wire_in_order(pair):
    connection, raw = pair
    big = bytes(range(256)) * 1024  # over the coalescing limit
    connection.send_frames([b"head", big, b"", b"tail"], timeout=5)
    expected = b"".join(HEADER.pack(len(p)) + p for p in (b"head", big, b"", b"tail"))
    got = bytearray()
    raw.settimeout(5)
    while len(got) < len(expected):
        got += raw.recv(1 << 20)
    assert bytes(got) == expected


def test_recv_into_a_buffer_too_small_fails_clearly_and_breaks_the_connection(pair):
    connection, raw = pair
    raw.sendall(HEADER.pack(100) + b"x" * 100)
    with pytest.raises(MeshError, match="does not fit the 99-byte buffer"):
        connection.recv(timeout=5, into=bytearray(99))
    assert connection.broken
    with pytest.raises(MeshError, match="broken"):
        connection.recv(timeout=1)


def test_recv_into_a_large_enough_buffer_fills_it_without_allocating(pair):
    connection, raw = pair
    payload = bytes(range(256)) * 4096  # 1 MiB
    target = bytearray(len(payload) + 10)
    threading.Thread(target=raw.sendall, args=(HEADER.pack(len(payload)) + payload,), daemon=True).start()
    view = connection.recv(timeout=5, into=target)
    assert view.obj is target and bytes(view) == payload


# Collectives, every member a thread of this process on its own loopback address.

@pytest.fixture
def group_of(tmp_path, monkeypatch):
    """run(n, body, timeout): n members (instances m0..m{n-1} on 127.0.0.2.. in the map) create a
    Group and run body(group); returns each member's result or exception, in rank order."""
    path = tmp_path / "map.json"
    monkeypatch.setenv("__OW_ADDRESS_MAP", str(path))

    def run(n, body, timeout=20.0, skip=(), publish=None):
        ids = ["m%d" % i for i in range(n)]
        listed = ids if publish is None else publish
        entries = [{"id": i, "ip": "127.0.0.%d" % (2 + ids.index(i)), "invoker": 0, "activationId": i} for i in listed]
        path.write_text(json.dumps({"schema": "whiskmesh.addressmap/v1", "namespace": "t", "version": 1, "instances": entries}))
        port = free_port()
        results = [None] * n

        def member(rank):
            try:
                with whiskmesh.Group(ids, port=port, timeout=timeout, me=ids[rank], address="127.0.0.%d" % (2 + rank)) as group:
                    assert (group.rank, group.size) == (rank, n)
                    results[rank] = body(group)
            except BaseException as error:  # reported to the test
                results[rank] = error
        threads = [threading.Thread(target=member, args=(r,), daemon=True) for r in range(n) if r not in skip]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout * 3)
            assert not t.is_alive(), "a member is still running"
        return results
    return run


def ok(results):
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def pattern(rank, size):
    return bytes((rank * 31 + k) % 251 for k in range(size))


SIZES = [0, 1000, 300_000, 3_000_000]  # the last two are over Group.LARGE: chain and ring
MEMBERS = [1, 2, 3, 5, 8]


@pytest.mark.parametrize("n", MEMBERS)
@pytest.mark.parametrize("size", SIZES)
def test_broadcast_gives_every_member_the_roots_bytes(group_of, n, size):
    data = pattern(7, size)
    root = n // 2
    results = ok(group_of(n, lambda g: bytes(g.broadcast(data if g.rank == root else None, root=root))))
    assert results == [data] * n


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("algorithm", ["star", "tree", None])
def test_broadcast_of_an_array_keeps_dtype_and_shape_with_every_algorithm(group_of, n, algorithm):
    array = numpy.arange(200_000, dtype=numpy.float32).reshape(400, 500)

    def body(g):
        got = g.broadcast(array if g.rank == 0 else None, root=0, algorithm=algorithm)
        return got.dtype, got.shape, bool(numpy.array_equal(got, array))
    assert ok(group_of(n, body)) == [(numpy.dtype(numpy.float32), (400, 500), True)] * n


@pytest.mark.parametrize("n", MEMBERS)
@pytest.mark.parametrize("size", [0, 1000, 300_000])
def test_scatter_gather_and_allgather_keep_rank_order(group_of, n, size):
    def body(g):
        chunks = [pattern(r, size) for r in range(n)] if g.is_root else None
        mine = bytes(g.scatter(chunks))
        gathered = g.gather(pattern(g.rank + 100, size))
        everyone = [bytes(b) for b in g.allgather(pattern(g.rank + 200, size))]
        return mine, None if gathered is None else [bytes(b) for b in gathered], everyone
    results = ok(group_of(n, body))
    for rank, (mine, gathered, everyone) in enumerate(results):
        assert mine == pattern(rank, size)
        assert gathered == ([pattern(r + 100, size) for r in range(n)] if rank == 0 else None)
        assert everyone == [pattern(r + 200, size) for r in range(n)]


@pytest.mark.parametrize("n", MEMBERS)
@pytest.mark.parametrize("length", [1, 1000, 100_000, 1_000_003])  # 8 B .. 8 MB of float64
@pytest.mark.parametrize("algorithm", [None, "tree", "star"])
def test_allreduce_sums_arrays_on_every_member(group_of, n, length, algorithm):
    def body(g):
        mine = numpy.arange(length, dtype=numpy.float64) * (g.rank + 1)
        before = mine.copy()
        total = g.allreduce(mine, algorithm=algorithm)
        assert numpy.array_equal(mine, before), "the caller's array is not changed"
        return total
    expected = numpy.arange(length, dtype=numpy.float64) * (n * (n + 1) / 2)
    for total in ok(group_of(n, body)):
        assert total.shape == (length,) and numpy.allclose(total, expected)


@pytest.mark.parametrize("n", [3, 8])
def test_the_ring_allreduce_handles_max_and_integer_arrays(group_of, n):
    def body(g):
        mine = numpy.full((600, 300), g.rank, dtype=numpy.int32)
        mine[0, 0] = 100 - g.rank
        return g.allreduce(mine, op="max", algorithm="ring")
    for total in ok(group_of(n, body)):
        assert total.dtype == numpy.int32 and total[0, 0] == 100 and total[1, 1] == n - 1


@pytest.mark.parametrize("n", MEMBERS)
def test_allreduce_and_reduce_of_json_values(group_of, n):
    def body(g):
        return g.allreduce([1, g.rank]), g.allreduce(g.rank, op="max"), g.reduce([g.rank, 2], root=n - 1), \
            g.allreduce("x%d" % g.rank, op=lambda a, b: "".join(sorted([a, b])))
    results = ok(group_of(n, body))
    for rank, (total, top, reduced, joined) in enumerate(results):
        assert total == [n, n * (n - 1) // 2] and top == n - 1
        assert reduced == ([n * (n - 1) // 2, 2 * n] if rank == n - 1 else None)
        assert sorted(joined[i:i + 2] for i in range(0, len(joined), 2)) == ["x%d" % r for r in range(n)]


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("length", [10, 500_000])
def test_reduce_of_arrays_reaches_only_the_root(group_of, n, length):
    def body(g):
        return g.reduce(numpy.ones(length, dtype=numpy.int64) * g.rank, root=1 % n)
    results = ok(group_of(n, body))
    for rank, result in enumerate(results):
        if rank == 1 % n:
            assert numpy.array_equal(result, numpy.full(length, n * (n - 1) // 2))
        else:
            assert result is None


@pytest.mark.parametrize("n", MEMBERS)
@pytest.mark.parametrize("size", [0, 100, 200_000])
def test_alltoall_delivers_each_members_chunk_for_me(group_of, n, size):
    def body(g):
        received = g.alltoall([pattern(g.rank * n + j, size) for j in range(n)])
        return [bytes(b) for b in received]
    for rank, received in enumerate(ok(group_of(n, body))):
        assert received == [pattern(j * n + rank, size) for j in range(n)]


def test_point_to_point_with_tags_waits_for_the_tag_asked_for(group_of):
    def body(g):
        if g.rank == 0:
            g.send(b"second", 1, tag=2)
            g.send({"first": True}, "m1", tag=1)
            g.send(numpy.arange(5), 1, tag=3)
            g.barrier()  # a collective between point-to-point messages
            return None
        first = g.recv(0, tag=1)
        g.barrier()
        second = bytes(g.recv("m0", tag=2))
        into = numpy.zeros(5, dtype=numpy.arange(5).dtype)
        third = g.recv(0, tag=3, into=into)
        return first, second, third is into, list(into)
    assert ok(group_of(2, body))[1] == ({"first": True}, b"second", True, [0, 1, 2, 3, 4])


def test_buffers_of_every_kind_are_sent_from_their_memory(group_of):
    def body(g):
        values = [b"bytes", bytearray(b"bytearray"), memoryview(b"xxmemoryview")[2:], numpy.arange(3, dtype=numpy.uint8)]
        if g.rank == 0:
            for value in values:
                g.send(value, 1)
            return None
        return [bytes(g.recv(0)) for _ in values]
    assert ok(group_of(2, body))[1] == [b"bytes", b"bytearray", b"memoryview", bytes([0, 1, 2])]


def test_a_member_that_never_joins_is_named_by_every_other(group_of):
    results = group_of(3, lambda g: g.barrier(), timeout=1.5, skip=(2,), publish=["m0", "m1"])
    for rank in (0, 1):
        assert isinstance(results[rank], MeshError)
        assert "did not join the group" in str(results[rank]) and "m2" in str(results[rank])


def test_a_member_that_dies_in_an_operation_fails_the_others_before_the_deadline(group_of):
    def body(g):
        g.barrier()
        if g.rank == 2:
            g.close()  # dies in the middle: its connections end
            return "gone"
        started = time.monotonic()
        try:
            g.allreduce(numpy.ones(1_000_000), timeout=20)
        except MeshError as error:
            return error, time.monotonic() - started
        return "no error"
    results = group_of(5, body)
    assert results[2] == "gone"
    for rank in (0, 1, 3, 4):
        error, elapsed = results[rank]
        assert isinstance(error, MeshError) and elapsed < 10, (rank, results[rank])


def test_a_member_gone_before_its_barrier_fails_the_root_at_once_not_at_the_deadline(tmp_path, monkeypatch):
    """m1 connects to the root, then dies before it says it joined: the root notices that the
    connection ended instead of waiting for m1 until the deadline."""
    path = tmp_path / "map.json"
    monkeypatch.setenv("__OW_ADDRESS_MAP", str(path))
    path.write_text(json.dumps({"instances": [{"id": "m0", "ip": "127.0.0.2"}, {"id": "m1", "ip": "127.0.0.3"}]}))
    port = free_port()

    def doomed():
        connection = whiskmesh.connect("m0", port=port, timeout=10, me="m1")
        connection.close()
    threading.Thread(target=doomed, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(MeshError, match="m1"):
        whiskmesh.Group(["m0", "m1"], port=port, timeout=30, me="m0", address="127.0.0.2")
    assert time.monotonic() - started < 10, "noticed at once, not at the 30 s deadline"


def test_the_root_needs_no_map_entry_of_its_members(group_of):
    """Members connect to the root; the root opens nothing, so a member missing from the map
    (as while its entry propagates) still joins."""
    results = group_of(3, lambda g: g.allreduce(g.rank + 1), publish=["m0"])
    assert ok(results) == [6, 6, 6]


def test_a_group_whose_root_never_comes_names_it(group_of):
    results = group_of(3, lambda g: g.barrier(), timeout=1.0, skip=(0,), publish=["m1", "m2"])
    for rank in (1, 2):
        assert isinstance(results[rank], MeshError)
        assert "did not join the group" in str(results[rank]) and "m0" in str(results[rank])


def test_a_silent_member_ends_the_operation_at_its_deadline_not_one_per_member(group_of):
    def body(g):
        if g.rank != 0:
            time.sleep(3)  # joined, then silent
            return None
        started = time.monotonic()
        with pytest.raises(MeshTimeout):
            g.gather(b"x", timeout=1.0)
        return time.monotonic() - started
    elapsed = ok(group_of(5, body))[0]
    # Per socket call it would be 4 × 1 s; one deadline ends it after about 1 s.
    assert 0.9 < elapsed < 2.5, "gather took %.1f s" % elapsed


def test_bad_arguments_are_clear_errors(group_of):
    def body(g):
        errors = []
        for call in (lambda: g.send(b"x", 0 if g.rank else 1, tag=-1), lambda: g.send(b"x", g.rank),
                     lambda: g.allreduce(1, op="median"), lambda: g.alltoall([b"x"]), lambda: g.broadcast(root=9),
                     lambda: g.send(object(), 1 - g.rank)):
            try:
                call()
                errors.append(None)
            except MeshError as error:
                errors.append(str(error))
        return errors
    for errors in ok(group_of(2, body)):
        assert all(errors), errors
