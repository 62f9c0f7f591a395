// Pong in JavaScript (kind nodejs:20): listens on its overlay address and echoes every message
// back until an empty one. It speaks the same frames and handshake as pong.py, so a Python ping
// can talk to it (and ping.js to pong.py).
const whiskmesh = require('whiskmesh');

async function main(args) {
  const server = await whiskmesh.listen();
  const peer = await whiskmesh.accept(server, { timeout: Number(args.timeout || 60) });
  let count = 0;
  let total = 0;
  for (;;) {
    const message = await peer.recv();
    await peer.send(message);
    if (message.length === 0) break;
    count += 1;
    total += message.length;
  }
  peer.close();
  server.close();
  return { me: whiskmesh.myId(), peer: peer.peer, echoed: count, bytes: total, runtime: `node ${process.version}` };
}
