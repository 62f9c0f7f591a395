"""WhiskMesh's Python action proxy: OpenWhisk's action-runtime protocol on port 8080.

POST /init  {"value": {"name", "main", "code", "binary", "env"}}   once per container
POST /run   {"value": params, "namespace", "action_name", "activation_id", "deadline", ...}

Replies: 200 + JSON object (an "error" field makes it an application error); any other status
is an action developer error. After every activation the sentinel line goes to stdout and to
stderr so the invoker can cut the container's log per activation.

A stage of a peer-to-peer sequence (its parameters carry P2P_PARAMETER, set by the controller)
gets its input from the previous stage's proxy over the namespace's overlay instead of from /run,
and sends its result to the next stage's proxy instead of returning it: see run_stage.
"""
import base64
import io
import json
import os
import socket
import sys
import threading
import time
import traceback
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
MAX_BODY = 64 * 1024 * 1024
RUN_FIELDS = ("namespace", "action_name", "action_version", "activation_id", "transaction_id",
              "deadline", "api_key", "api_host", "instance_id", "overlay_ip", "address_map")

P2P_PARAMETER = "__whiskmesh_p2p"
state = {"main": None, "lock": threading.Lock(), "init_env": {}}


def load_action(value):
    code = value.get("code")
    if not isinstance(code, str) or not code:
        raise ValueError("Missing main/no code to execute.")
    entry = value.get("main") or "main"
    namespace = {"__name__": "__main__"}
    if value.get("binary"):
        archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(code)))
        target = "/action"
        os.makedirs(target, exist_ok=True)
        archive.extractall(target)
        sys.path.insert(0, target)
        with open(os.path.join(target, "__main__.py")) as f:
            code = f.read()
    exec(compile(code, "__main__.py", "exec"), namespace)
    function = namespace.get(entry)
    if not callable(function):
        raise ValueError("Action entrypoint '%s' is not a function." % entry)
    return function


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The invoker keeps the connection alive: without TCP_NODELAY the body, sent after the
    # headers, waits for the invoker's delayed ACK (40 ms per activation).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # keep the container log for the action's own output
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            raise ValueError("request body must be 1..%d bytes" % MAX_BODY)
        return json.loads(self.rfile.read(length))

    def do_POST(self):
        try:
            message = self.read_json()
        except Exception as error:  # malformed request: the invoker's bug, not the action's
            self.close_connection = True  # its body may be unread: the connection is not reusable
            self.reply(400, {"error": "bad request: %s" % error})
            return
        if self.path == "/init":
            self.init(message)
        elif self.path == "/run":
            self.run(message)
        else:
            self.reply(404, {"error": "unknown path %s" % self.path})

    def init(self, message):
        with state["lock"]:
            if state["main"] is not None:
                self.reply(403, {"error": "Cannot initialize the action more than once."})
                return
            value = message.get("value") or {}
            try:
                env = value.get("env") or {}
                for key, val in env.items():
                    os.environ[str(key)] = val if isinstance(val, str) else json.dumps(val)
                state["main"] = load_action(value)
            except Exception as error:
                traceback.print_exc()
                self.finish_logs()
                self.reply(502, {"error": "Initialization has failed due to: %s" % error})
                return
        # No sentinel here: what init prints belongs to the first activation's logs.
        self.reply(200, {"ok": True})

    def run(self, message):
        main = state["main"]
        if main is None:
            self.reply(502, {"error": "Cannot run an uninitialized action."})
            return
        for field in RUN_FIELDS:
            name = "__OW_" + field.upper()
            if field in message and message[field] is not None:
                value = message[field]
                os.environ[name] = value if isinstance(value, str) else json.dumps(value)
            else:
                # Nothing of an earlier activation's identity leaks into this one.
                os.environ.pop(name, None)
        params = message.get("value")
        if params is None:
            params = {}
        if isinstance(params, dict) and isinstance(params.get(P2P_PARAMETER), dict):
            status, body = run_stage(main, params, params.pop(P2P_PARAMETER))
            self.finish_logs()
            try:
                self.reply(status, body)
            except (TypeError, ValueError) as error:
                self.reply(502, {"error": "The action returned a result that is not JSON: %s" % error})
            return
        try:
            result = main(params)
        except Exception as error:
            traceback.print_exc()
            self.finish_logs()
            self.reply(200, {"error": "An exception was raised: %s: %s" % (type(error).__name__, error)})
            return
        self.finish_logs()
        if not isinstance(result, (dict, list)):
            self.reply(502, {"error": "The action did not return a dictionary or an array."})
            return
        try:
            self.reply(200, result)
        except (TypeError, ValueError) as error:
            self.reply(502, {"error": "The action returned a result that is not JSON: %s" % error})

    @staticmethod
    def finish_logs():
        print(SENTINEL, flush=True)
        print(SENTINEL, file=sys.stderr, flush=True)


def run_stage(main, params, p2p):
    """One stage of a peer-to-peer sequence: (HTTP status, reply).

    p2p: {"stage": i, "instances": [instance ID of each stage], "components": [action names],
          "deadline": epoch ms, "port": the stages' port}
    Stage i > 0 listens on its overlay address and takes its input from stage i - 1 (a head frame
    {"ok": true} or {"ok": false, "error": ...}, then the result as JSON); the input is merged over
    the action's default parameters, as in a classic sequence. Stage i < last sends its result (or
    its error, or the error it received, so that no later stage waits for nothing) to stage i + 1
    and replies with a small summary; the last stage replies with the action's result."""
    import whiskmesh  # next to this file, on sys.path

    try:
        stage, instances, components = int(p2p["stage"]), [str(i) for i in p2p["instances"]], [str(c) for c in p2p["components"]]
        deadline, port = float(p2p["deadline"]) / 1000.0, int(p2p.get("port", 7072))
        name = components[stage]
    except (KeyError, ValueError, TypeError, IndexError) as error:
        return 400, {"error": "bad peer-to-peer stage description: %s" % error}
    params.pop("instanceID", None)
    last = stage == len(instances) - 1

    def remaining():
        return max(0.01, deadline - time.time())

    def forward(head, payload=b""):
        """Sends head (+ payload) to the next stage; an error message if it could not."""
        if last:
            return None
        try:
            with whiskmesh.connect(instances[stage + 1], port=port, timeout=remaining(), me=instances[stage]) as downstream:
                downstream.send_frames([json.dumps(head).encode(), payload], timeout=remaining())
        except (whiskmesh.MeshError, OSError) as error:
            return "component %s could not pass its result to %s: %s" % (name, components[stage + 1], error)
        return None

    def fail(message, status=200):
        forward({"ok": False, "error": message})
        return status, {"error": message}

    if stage > 0:
        try:
            listener = whiskmesh.listen(port)
        except OSError as error:
            return fail("component %s cannot listen for its input on port %d: %s" % (name, port, error))
        try:
            while True:
                upstream = whiskmesh.accept(listener, timeout=remaining(), me=instances[stage])
                if upstream.peer == instances[stage - 1]:
                    break
                upstream.close()
            with upstream:
                head = json.loads(upstream.recv(timeout=remaining()))
                payload = upstream.recv(timeout=remaining())
        except (whiskmesh.MeshError, OSError, ValueError) as error:
            return fail("component %s got no input from %s before the sequence's deadline: %s" % (name, components[stage - 1], error))
        finally:
            listener.close()
        if not isinstance(head, dict) or not head.get("ok"):
            return fail(str(head.get("error") if isinstance(head, dict) else head))
        try:
            received = json.loads(payload)
        except ValueError as error:
            return fail("component %s got input that is not JSON: %s" % (name, error))
        del payload
        if not isinstance(received, dict):
            return fail("component %s got input that is not a dictionary" % name)
        params.update(received)
    try:
        result = main(params)
    except Exception as error:
        traceback.print_exc()
        return fail("component %s failed: An exception was raised: %s: %s" % (name, type(error).__name__, error))
    if not isinstance(result, dict):
        return fail("component %s failed: The action did not return a dictionary." % name, 502)
    if "error" in result:
        return fail("component %s failed: %s" % (name, result["error"]))
    if last:
        return 200, result
    try:
        payload = json.dumps(result).encode()
    except (TypeError, ValueError) as error:
        return fail("component %s failed: The action returned a result that is not JSON: %s" % (name, error), 502)
    del result
    problem = forward({"ok": True}, payload)
    if problem:
        return 200, {"error": problem}
    return 200, {"p2p": {"to": components[stage + 1], "bytes": len(payload)}}


def invoker_facing_address():
    """The address to serve /init and /run on: the container's address on the network it was
    created on (the invoker's action bridge), which Docker writes into /etc/hosts for the
    container's host name. The namespace's overlay is attached after the proxy started, so other
    instances of the namespace, which reach this container only over the overlay, find nothing
    listening on port 8080 there: only the invoker can drive /init and /run.
    PROXY_BIND overrides it (0.0.0.0 for all interfaces)."""
    configured = os.environ.get("PROXY_BIND")
    if configured:
        return configured
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError as error:
        print("actionproxy: cannot find the container's address (%s); serving on all interfaces" % error, file=sys.stderr, flush=True)
        return "0.0.0.0"


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    server = ThreadingHTTPServer((invoker_facing_address(), int(os.environ.get("PORT", "8080"))), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
