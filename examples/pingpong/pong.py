# Pong: listens on its overlay address and echoes every message back until an empty one.
# Messages are received into one reused buffer (recv(into=...)): no allocation per message.
import whiskmesh


def main(args):
    buffer = bytearray(int(args.get("buffer", 64 << 20)))
    listener = whiskmesh.listen()
    with whiskmesh.accept(listener, timeout=float(args.get("timeout", 60))) as peer:
        count = 0
        total = 0
        while True:
            message = peer.recv(into=buffer)
            peer.send(message)
            if not message:
                break
            count += 1
            total += len(message)
    listener.close()
    return {"me": whiskmesh.my_id(), "echoed": count, "bytes": total}
