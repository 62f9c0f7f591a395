"""Runs the scatter-gather job: creates the master and worker actions, invokes N workers and the
master at once, each as an activation with an instance ID (non-blocking workers, a blocking master),
and returns how long it took from the first invoke to the master's result, split into launch
(until every worker has joined the group) and communication (scatter, count, gather).

    python3 examples/scatter-gather/job.py --api http://127.0.0.1:3233 --auth USER:KEY --workers 6

It checks the master's word counts against its own count of the text and exits 1 when they differ.
bench/scattergather.py imports it.
"""
import argparse
import base64
import collections
import concurrent.futures
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = os.path.join(HERE, "text.txt")


class Client:
    """The few calls of OpenWhisk's REST API the job needs."""

    def __init__(self, api, auth):
        self.api = api.rstrip("/")
        self.auth = "Basic " + base64.b64encode(auth.encode()).decode()

    def request(self, method, path, body=None, timeout=120):
        request = urllib.request.Request(self.api + "/api/v1/namespaces/_" + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        request.add_header("Authorization", self.auth)
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

    def put_action(self, name, path, memory, timeout_ms=300_000):
        with open(path) as f:
            code = f.read()
        status, body = self.request("PUT", "/actions/%s?overwrite=true" % name, {
            "exec": {"kind": "python:3", "code": code}, "limits": {"memory": memory, "timeout": timeout_ms}})
        if status != 200:
            raise RuntimeError("cannot create action %s: %d %s" % (name, status, body))

    def record(self, activation_id, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, body = self.request("GET", "/activations/%s" % activation_id)
            if status == 200:
                return body
            time.sleep(0.1)
        raise RuntimeError("activation %s has no record after %d s" % (activation_id, timeout))


def deploy(client, prefix="sg", master_memory=256, worker_memory=128):
    """Creates (or updates) PREFIX-master and PREFIX-worker; returns their names."""
    master, worker = prefix + "-master", prefix + "-worker"
    client.put_action(master, os.path.join(HERE, "master.py"), master_memory)
    client.put_action(worker, os.path.join(HERE, "worker.py"), worker_memory)
    return master, worker


def run(client, workers, master="sg-master", worker="sg-worker", variant="words", text=None, size=None,
        transport="mesh", redis=None, timeout=120):
    """One job; returns its timings (seconds), the master's result and every member's invoker."""
    job = "sg%s" % secrets.token_hex(4)
    worker_ids = ["%s-w%d" % (job, i) for i in range(workers)]
    common = {"master": job + "-m", "workers": worker_ids, "variant": variant, "transport": transport,
              "timeout": timeout, "redis": redis, "key": job}
    if variant == "words":
        common["text"] = text if text is not None else open(TEXT).read()
    else:
        common["bytes"] = size
    params = {key: value for key, value in common.items() if key != "text"}

    def start_worker(worker_id):
        status, body = client.request("POST", "/actions/%s?blocking=false" % worker, dict(params, instanceID=worker_id))
        if status != 202:
            raise RuntimeError("invoking worker %s: %d %s" % (worker_id, status, body))
        return body["activationId"]
    # Every member is invoked at once, as a client that starts a job would.
    with concurrent.futures.ThreadPoolExecutor(min(16, workers + 1)) as pool:
        first = time.time()
        master_call = pool.submit(client.request, "POST", "/actions/%s?blocking=true" % master, dict(common, instanceID=job + "-m"),
                                  timeout + 60)
        activations = list(pool.map(start_worker, worker_ids))
        status, body = master_call.result()
    if status == 202:
        body = client.record(body["activationId"])
    ended = time.time()
    result = (body.get("response") or {}).get("result") or {}
    if "error" in result or status not in (200, 202):
        # A worker's own error says more than the master's "the peer closed the connection".
        reasons = []
        for activation in activations:
            record = client.record(activation, timeout=30)
            if not record["response"]["success"]:
                reasons.append("%s after %s ms" % (record["response"]["result"], record.get("duration")))
        raise RuntimeError("the master failed: %d %s; workers that failed: %s" % (status, result or body, reasons[:3] or "none"))
    for activation in activations:
        record = client.record(activation)
        if not record["response"]["success"]:
            raise RuntimeError("a worker failed: %s" % record["response"]["result"])
    return {"workers": workers, "transport": transport, "variant": variant, "total": ended - first,
            "launch": result["joined"] - first, "communication": result["done"] - result["joined"],
            "result": result}


def expected_counts(text):
    return collections.Counter(text.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--auth", required=True)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--worker-memory", type=int, default=128, help="MB per worker (the balancer fills one invoker first)")
    args = parser.parse_args()
    client = Client(args.api, args.auth)
    master, worker = deploy(client, worker_memory=args.worker_memory)
    text = open(TEXT).read()
    outcome = run(client, args.workers, master, worker, text=text)
    result = outcome["result"]
    expected = expected_counts(text)
    if result["words"] != sum(expected.values()) or result["distinct"] != len(expected):
        print("scatter-gather: wrong counts: %d words, %d distinct; expected %d and %d" % (
            result["words"], result["distinct"], sum(expected.values()), len(expected)), file=sys.stderr)
        return 1
    where = collections.defaultdict(list)
    for member, invoker in result["placement"].items():
        where[invoker].append(member.rsplit("-", 1)[1])
    print("scatter-gather: a master and %d workers counted %d words (%d distinct) of examples/scatter-gather/text.txt" % (
        args.workers, result["words"], result["distinct"]))
    print("  most frequent: %s" % ", ".join("%s %d" % (w, c) for w, c in result["top"]))
    print("  %.2f s from the first invoke to the result: launch %.2f s (until every worker joined), communication %.3f s" % (
        outcome["total"], outcome["launch"], outcome["communication"]))
    for invoker in sorted(where, key=str):
        print("  invoker%s ran %s" % (invoker, " ".join(sorted(where[invoker]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
