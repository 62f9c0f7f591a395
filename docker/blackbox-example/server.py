"""An example blackbox action image: any image that answers OpenWhisk's /init and /run on port
8080 can be an action (`exec.kind: "blackbox"`, `exec.image`). This one says hello to `name`
and reports which activation it ran; it prints the log sentinels after each activation, as the
runtime protocol asks."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        try:
            message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "the request is not JSON"})
        if self.path == "/init":
            return self.reply(200, {"ok": True})
        if self.path != "/run":
            return self.reply(404, {"error": "unknown path %s" % self.path})
        value = message.get("value") or {}
        print("blackbox run for", message.get("activation_id"), flush=True)
        print(SENTINEL, flush=True)
        print(SENTINEL, file=sys.stderr, flush=True)
        self.reply(200, {"greeting": "Hello %s from a blackbox" % value.get("name", "stranger"),
                         "activationId": message.get("activation_id")})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
