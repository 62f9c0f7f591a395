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


# Collectives: one deadline for the whole operation.

def test_a_gather_waits_one_deadline_not_one_per_member(mesh):
    members = ["m1", "m2", "m3", "m4"]
    mesh("me", *members)
    port = free_port()
    joined = []

    def join(member):
        joined.append(whiskmesh.connect("me", port=port, timeout=10, me=member))  # and then stay silent
    threads = [threading.Thread(target=join, args=(m,), daemon=True) for m in members]
    for t in threads:
        t.start()
    group = whiskmesh.Group(["me", *members], root="me", port=port, timeout=10)
    try:
        assert set(group.peers) == set(members), "members are known by their handshake"
        started = time.monotonic()
        with pytest.raises(MeshTimeout):
            group.gather(b"x", timeout=1.0)
        elapsed = time.monotonic() - started
        # Per socket call it would be 4 × 1 s; one deadline ends it after about 1 s.
        assert elapsed < 2.5, "gather took %.1f s" % elapsed
    finally:
        group.close()
        for connection in joined:
            connection.close()

