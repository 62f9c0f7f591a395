"""scripts/run and scripts/stop as a user runs them, on ports, a state folder and overlay names of
the test's own: run's demo scatter-gather counts right across both invokers; stop leaves no
process, no container and none of the run's overlays, even with an activation in the middle of a
120 s sleep (the invokers drain for their grace period, then remove what runs)."""
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running: scripts/run's processes are not our children, so this is rare.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True).stdout.split()


def networks(tag):
    return [n for n in docker("network", "ls", "--format", "{{.Name}}") if n.startswith("wmrunstop-%s-" % tag)]


def container_of(state, tag, instance):
    """The name of the container that runs `instance`, from the run's map files and overlay, or None."""
    ip = None
    for path in glob.glob(os.path.join(state, "addressmap", "*", "*", "map.json")):
        try:
            with open(path) as f:
                ip = next((e["ip"] for e in json.load(f)["instances"] if e["id"] == instance), ip)
        except (OSError, ValueError):
            continue
    if ip is None:
        return None
    for network in networks(tag):
        listing = subprocess.run(["docker", "network", "inspect", network, "--format",
                                  "{{range .Containers}}{{.Name}} {{.IPv4Address}}\n{{end}}"], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            name, _, address = line.partition(" ")
            if address.split("/")[0] == ip:
                return name
    return None


def test_stop_leaves_nothing_running_even_mid_activation():
    state = tempfile.mkdtemp(prefix="whiskmesh-runstop-")
    tag = secrets.token_hex(3)
    action = "sleeper%s" % tag
    env = dict(os.environ, WHISK_STATE=state, WHISK_KAFKA_PORT=str(free_port()), WHISK_API_PORT=str(free_port()),
               WHISK_OVERLAY_NAME_PREFIX="wmrunstop-%s-" % tag, WSK_CONFIG_FILE=os.path.join(state, "wskprops"))
    pids = {}
    try:
        ran = subprocess.run([os.path.join(ROOT, "scripts", "run")], env=env, timeout=900, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr[-3000:]
        # The demo's scatter-gather checked its counts (job.py exits 1 otherwise) and spanned both invokers.
        assert "scatter-gather: a master and 6 workers counted" in ran.stdout, ran.stdout
        assert "invoker0 ran" in ran.stdout and "invoker1 ran" in ran.stdout, ran.stdout
        for name in ("broker", "controller", "invoker0", "invoker1"):
            with open(os.path.join(state, name + ".pid")) as f:
                pids[name] = int(f.read())
        assert all(alive(pid) for pid in pids.values()), "scripts/run started everything"
        with tempfile.TemporaryDirectory() as swift_tmp:  # SwiftPM leaves empty folders in $TMPDIR
            wsk = os.path.join(subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True,
                                              env=dict(os.environ, TMPDIR=swift_tmp)).stdout.strip(), "wsk")
        code = os.path.join(state, "sleeper.py")
        with open(code, "w") as f:
            f.write("import time\ndef main(args):\n    time.sleep(120)\n    return {}\n")
        subprocess.run([wsk, "action", "create", action, code, "--timeout", "300000"], env=env, check=True, capture_output=True)
        # With an instance ID, so that its container can be found whatever its name (a namespace's
        # stem cell keeps the name it was created with): its map entry gives its overlay address.
        instance = "sleeper-%s" % tag
        invoked = subprocess.run([wsk, "action", "invoke", action, "--instance-id", instance], env=env, check=True,
                                 capture_output=True, text=True)
        assert "ok: invoked" in invoked.stdout, invoked.stdout
        deadline = time.time() + 60
        running = None
        while time.time() < deadline and running is None:
            running = container_of(state, tag, instance)
            time.sleep(0.5)
        assert running, "positive control: the activation's container runs before the stop"
        started = time.time()
        subprocess.run([os.path.join(ROOT, "scripts", "stop")], env=env, check=True, timeout=300, capture_output=True)
        assert time.time() - started < 120, "the stop did not wait for the 120 s action"
        left = [name for name, pid in pids.items() if alive(pid)]
        assert not left, "still running after scripts/stop: %s" % left
        assert running not in docker("ps", "-a", "--format", "{{.Names}}"), "container %s left by scripts/stop" % running
        remaining = [c for network in networks(tag) for c in docker("ps", "-aq", "--filter", "network=" + network)]
        assert not remaining, "containers left on the run's overlay by scripts/stop: %s" % remaining
        assert not networks(tag), "overlays left by scripts/stop: %s" % networks(tag)
    finally:
        for pid in pids.values():
            if alive(pid):
                os.kill(pid, 9)
        for name in docker("ps", "-a", "--format", "{{.Names}}"):
            if name.endswith("_" + action):
                subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        for network in networks(tag):
            # What an invoker killed above left on this run's overlay (the demo's, the sleeper's).
            for container in docker("ps", "-aq", "--filter", "network=" + network):
                subprocess.run(["docker", "rm", "-f", container], capture_output=True)
            subprocess.run(["docker", "network", "rm", network], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
