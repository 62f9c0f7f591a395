// Ping in JavaScript (kind nodejs:20): finds its peer through the address map, sends `count`
// small messages and one of `size` bytes, and checks that every echo matches.
const crypto = require('crypto');
const whiskmesh = require('whiskmesh');

async function main(args) {
  const peerId = args.peer;
  const count = Number(args.count || 1000);
  const size = Number(args.size || 0);
  const peer = await whiskmesh.connect(peerId, { timeout: Number(args.timeout || 60) });
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i += 1) {
    const payload = Buffer.from(String(i).padStart(8, '0') + 'x'.repeat(56));
    await peer.send(payload);
    if (!(await peer.recv()).equals(payload)) return { error: `echo ${i} differs` };
  }
  const small = Number(process.hrtime.bigint() - started) / 1e9;
  let digest = null;
  if (size) {
    const blob = crypto.randomBytes(size);
    digest = crypto.createHash('sha256').update(blob).digest('hex');
    await peer.send(blob);
    const echoed = await peer.recv();
    if (crypto.createHash('sha256').update(echoed).digest('hex') !== digest) return { error: 'the large message came back corrupted' };
  }
  await peer.send(Buffer.alloc(0));
  await peer.recv();
  peer.close();
  return { me: whiskmesh.myId(), peer: peerId, roundTrips: count, smallSeconds: small, largeBytes: size, sha256: digest,
           peers: whiskmesh.peers(), runtime: `node ${process.version}` };
}
