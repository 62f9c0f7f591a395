# Roles of the cluster tests' action (appended to the ping and pong examples' code).
import socket
import time

import whiskmesh


def main(args):
    role = args.get("role")
    if role == "where":
        # Where this instance runs, from its own entry in the address map.
        me = whiskmesh.my_id()
        whiskmesh.wait_for([me], timeout=30)
        entry = next(e for e in whiskmesh.read_map()["instances"] if e["id"] == me)
        return {"invoker": entry["invoker"], "ip": entry["ip"]}
    if role == "hold":
        # Stays in the map for `seconds`, accepting (and closing) connections on `port`.
        listener = whiskmesh.listen(port=int(args.get("port", 7070)))
        listener.settimeout(0.2)
        deadline = time.monotonic() + float(args.get("seconds", 30))
        accepted = 0
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
                conn.close()
                accepted += 1
            except socket.timeout:
                pass
        listener.close()
        return {"accepted": accepted}
    if role == "probe":
        # Whether a TCP connection to ip:port succeeds.
        try:
            socket.create_connection((args["ip"], int(args.get("port", 7070))), timeout=3).close()
            return {"reached": True}
        except OSError as error:
            # Not "error": OpenWhisk reads a result with an "error" field as a failed activation.
            return {"reached": False, "failure": str(error)}
    if role == "ping":
        return ping_main(args)
    if role == "pong":
        return pong_main(args)
    if role == "echo":
        return {"n": args.get("n")}
    return {"error": "unknown role %r" % role}
