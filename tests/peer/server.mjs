// The Node peer of the benchmarks: socket.io 4.8 with @socket.io/redis-adapter,
// implementing the contract subset the load tool uses, the way a Node team
// would write it by default. Settings (environment): PEER_ADDR (127.0.0.1:PORT),
// REDIS_URL, JWT_PUBLIC_KEY_FILE (SPKI PEM Ed25519), ROOMS, JWT_ISSUER, JWT_AUDIENCE.
//
// - handshake: EdDSA room token from the CONNECT auth payload, checked with
//   Node's crypto against the public key (alg, kid = RFC 7638 thumbprint,
//   signature, iss, aud, exp, required claims); refusals are CONNECT_ERRORs
//   with the contract's codes.
// - on connect: join the token's room, `welcome` {room, you, members: [you],
//   history, recovered}, `user entered` to the others of the room. Without a
//   `since` in the auth payload (or with one that is not a stream id),
//   history: [] and recovered: true; with one, the room stream's messages
//   strictly after it (XREVRANGE + (since COUNT 101, oldest first, shaped as
//   `history` answers them): the newest 100, recovered: false when more came
//   after `since` (or Redis failed), as the contract says.
// - `message sent`: validate, XADD to the room's stream (MAXLEN ~ 1000),
//   broadcast `message received` through the adapter, ack {ok, id}.
// - `history` {before, limit ≤ 100}: XREVRANGE of the room's stream strictly
//   before `before`, oldest first, ack {ok, messages}. Like the rest of the
//   peer it has no per-user budget (the benchmark's flood scenario sends it).
// - `typing` (no payload, no ack): SET peer:typing:<room>:<user> NX PX 2000, and
//   when it was set, `user typing` {id, name} to the room except the sender,
//   through the adapter: at most one per user per 2 s across replicas.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const env = (name, dflt) => {
  const v = process.env[name]?.trim();
  if (v) return v;
  if (dflt === undefined) {
    console.error(`setting ${name}: required`);
    process.exit(2);
  }
  return dflt;
};

const [host, port] = env('PEER_ADDR', '127.0.0.1:8091').split(/:(?=\d+$)/);
const redisUrl = env('REDIS_URL');
const issuer = env('JWT_ISSUER', 'chat-web');
const audience = env('JWT_AUDIENCE', 'chat-gateway');
const rooms = new Set(env('ROOMS', 'General,Sports,Music').split(',').map((r) => r.trim()).filter(Boolean));
const MAX_TEXT = 2000;
const WELCOME_HISTORY_MAX = 100;
const STREAM_ID = /^\d+-\d+$/;
const TYPING_THROTTLE_MS = 2000;

// Every SPKI key in the file, by kid.
const keys = new Map();
const pem = fs.readFileSync(env('JWT_PUBLIC_KEY_FILE'), 'utf8');
for (const block of pem.match(/-----BEGIN PUBLIC KEY-----[^-]+-----END PUBLIC KEY-----/g) ?? []) {
  const key = crypto.createPublicKey(block);
  const { x } = key.export({ format: 'jwk' });
  const kid = crypto.createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
  keys.set(kid, key);
}
if (keys.size === 0) {
  console.error('setting JWT_PUBLIC_KEY_FILE: no PUBLIC KEY block');
  process.exit(2);
}

class Refusal extends Error {}

/** The claims of a valid room token, or throws a Refusal with the contract code. */
function verify(token) {
  if (typeof token !== 'string' || token === '') throw new Refusal('token_missing');
  const parts = token.split('.');
  if (parts.length !== 3) throw new Refusal('token_invalid');
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    throw new Refusal('token_invalid');
  }
  if (header.alg !== 'EdDSA' || header.jwk || header.jku || header.x5u) throw new Refusal('token_invalid');
  const key = keys.get(header.kid);
  if (!key) throw new Refusal('token_invalid');
  const ok = crypto.verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'));
  if (!ok) throw new Refusal('token_invalid');
  for (const c of ['iss', 'aud', 'sub', 'name', 'room', 'iat', 'exp', 'jti']) {
    if (claims[c] === undefined) throw new Refusal('token_invalid');
  }
  if (claims.iss !== issuer || claims.aud !== audience) throw new Refusal('token_invalid');
  if (claims.exp + 5 < Date.now() / 1000) throw new Refusal('token_expired');
  if (!rooms.has(claims.room)) throw new Refusal('room_unknown');
  return claims;
}

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
const store = pub.duplicate();
for (const c of [pub, sub, store]) c.on('error', (e) => console.error('redis:', e.message));
await Promise.all([pub.connect(), sub.connect(), store.connect()]);

const server = http.createServer((req, res) => {
  if (req.url === '/healthz' || req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(server, {
  path: '/socket.io/',
  transports: ['websocket'],
  serveClient: false,
  adapter: createAdapter(pub, sub),
  maxHttpBufferSize: 64 * 1024,
});

io.use((socket, next) => {
  try {
    socket.data.claims = verify(socket.handshake.auth?.token);
    next();
  } catch (e) {
    next(new Error(e instanceof Refusal ? e.message : 'token_invalid'));
  }
});

const streamOf = (room) => `peer:room:${room}:messages`;

/** A stream entry as clients receive a message. */
const messageOf = (room, { id, message: m }) => ({
  id,
  room,
  user: { id: m.user, name: m.name },
  text: m.text,
  ts: Number(m.ts),
});

io.on('connection', async (socket) => {
  const { sub: id, name, room } = socket.data.claims;
  const you = { id, name };
  // Joined before the history is read (at the end): a message sent meanwhile
  // is in the history or comes after `welcome`, never neither.
  socket.join(room);
  socket.on('disconnect', () => socket.to(room).emit('user exited', you));

  socket.on('message sent', async (text, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    if (typeof text !== 'string') return reply({ ok: false, error: 'invalid' });
    if (text.trim() === '') return reply({ ok: false, error: 'empty' });
    if ([...text].length > MAX_TEXT) return reply({ ok: false, error: 'too_long' });
    const ts = Date.now();
    let msgId;
    try {
      msgId = await store.xAdd(streamOf(room), '*', { user: id, name, text, ts: String(ts) }, {
        TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 1000 },
      });
    } catch {
      return reply({ ok: false, error: 'unavailable' });
    }
    io.to(room).emit('message received', { id: msgId, room, user: you, text, ts });
    reply({ ok: true, id: msgId });
  });

  socket.on('typing', async () => {
    let first;
    try {
      first = await store.set(`peer:typing:${room}:${id}`, '1', { NX: true, PX: TYPING_THROTTLE_MS });
    } catch {
      return;
    }
    if (first === 'OK') socket.to(room).emit('user typing', you);
  });

  socket.on('history', async (request, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    const { before, limit } = request ?? {};
    if (typeof before !== 'string' || !STREAM_ID.test(before) || !Number.isInteger(limit) || limit < 1 || limit > 100) {
      return reply({ ok: false, error: 'invalid' });
    }
    let entries;
    try {
      entries = await store.xRevRange(streamOf(room), `(${before}`, '-', { COUNT: limit });
    } catch {
      return reply({ ok: false, error: 'unavailable' });
    }
    const messages = entries.reverse().map((e) => messageOf(room, e));
    reply({ ok: true, messages });
  });

  const welcome = (history, recovered) => {
    socket.emit('welcome', { room, you, members: [you], history, recovered });
    socket.to(room).emit('user entered', you);
  };
  const since = socket.handshake.auth?.since;
  if (typeof since !== 'string' || !STREAM_ID.test(since)) return welcome([], true);
  let entries;
  try {
    entries = await store.xRevRange(streamOf(room), '+', `(${since}`, { COUNT: WELCOME_HISTORY_MAX + 1 });
  } catch {
    return welcome([], false);
  }
  // In the same turn as the reply: a `message received` whose XADD was
  // answered after this read (so is not in it) is emitted after `welcome`.
  const history = entries.slice(0, WELCOME_HISTORY_MAX).reverse().map((e) => messageOf(room, e));
  welcome(history, entries.length <= WELCOME_HISTORY_MAX);
});

server.listen(Number(port), host, () => console.log(`peer listening on ${host}:${port}`));
const stop = () => {
  io.close();
  Promise.allSettled([pub.quit(), sub.quit(), store.quit()]).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
