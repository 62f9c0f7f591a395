# Benchmark 3's watcher: polls its map file every millisecond and notes, for every instance whose ID
# starts with "probe-", the wall-clock time it first appeared and the time it then disappeared.
# Returns when an instance called "stop" appears, or after `seconds`.
import json
import os
import time

import whiskmesh


def main(args):
    path = whiskmesh.map_path()
    deadline = time.time() + float(args.get("seconds", 240))
    seen, gone, last, reads = {}, {}, None, 0
    me = whiskmesh.my_id()
    invoker = None
    while time.time() < deadline:
        try:
            info = os.stat(path)
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            now = time.time()
            last = stamp
            try:
                with open(path) as f:
                    instances = json.load(f)["instances"]
            except (OSError, ValueError):
                continue
            reads += 1
            present = set()
            for entry in instances:
                ident = entry["id"]
                present.add(ident)
                if ident == me:
                    invoker = entry["invoker"]
                if ident.startswith("probe-") and ident not in seen:
                    seen[ident] = {"t": now, "invoker": entry["invoker"]}
            for ident in seen:
                if ident not in present and ident not in gone:
                    gone[ident] = now
            if "stop" in present:
                break
        time.sleep(0.001)
    return {"me": me, "invoker": invoker, "seen": seen, "gone": gone, "reads": reads}
