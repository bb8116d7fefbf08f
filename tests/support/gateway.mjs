// A gateway cluster for tests: a private Redis (single, cluster or sentinel), a key pair,
// N real `chat-gateway` processes, and socket.io-client helpers that record every event a
// client receives.
import { after } from 'node:test';
import { io } from 'socket.io-client';
import { startRedisTopology } from './topology.mjs';
import { startService } from './service.mjs';
import { freePort, until } from './net.mjs';
import { generateKeyPair, tempFile, mint } from './keys.mjs';

/**
 * Starts one gateway replica on a free port against `cluster`'s Redis and key; `bin` runs another
 * build of the gateway (a path) instead of this tree's.
 */
export async function startGateway(cluster, env = {}, { bin } = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const service = await startService('chat-gateway', {
    GATEWAY_ADDR: `127.0.0.1:${port}`,
    REDIS_URL: cluster.redis.url,
    JWT_PUBLIC_KEY_FILE: cluster.publicKeyFile,
    ...cluster.env,
    ...env,
  }, `${url}/healthz`, bin ? { bin } : {});
  const gateway = { ...service, url, port };
  cluster.gateways.push(gateway);
  return gateway;
}

/**
 * Redis + keys + `replicas` gateways sharing `env`. Call `cluster.stop()` in `after`.
 * `redisArgs` (optional) are extra redis-server arguments (see `startRedis`).
 * `topology` is the Redis to run on: 'single', 'cluster' or 'sentinel' (see topology.mjs),
 * by default `$CHAT_TEST_REDIS`, else 'single'.
 */
export async function startCluster({ replicas = 2, env = {}, redisArgs = [], topology = process.env.CHAT_TEST_REDIS || 'single' } = {}) {
  const keys = generateKeyPair();
  const redis = await startRedisTopology(topology, { args: redisArgs });
  const cluster = { keys, redis, env, gateways: [], clients: [], publicKeyFile: tempFile('public.pem', keys.publicPem) };
  for (let i = 0; i < replicas; i++) await startGateway(cluster);
  cluster.token = (claims = {}, header = {}) => mint(keys, claims, header);
  cluster.client = (gateway, auth, opts) => {
    const c = connectClient(gateway.url, auth, opts);
    cluster.clients.push(c);
    return c;
  };
  /** A connected client of `user` in `room` on `gateway`; resolves once `welcome` arrived. */
  cluster.join = async (gateway, { sub = 'user-1', name = sub, room = 'General', sid, since } = {}) => {
    const c = cluster.client(gateway, { token: cluster.token({ sub, name, room, sid }), since });
    await c.welcome;
    return c;
  };
  cluster.stop = async () => {
    for (const c of cluster.clients) c.socket.close();
    await Promise.all(cluster.gateways.map((g) => g.stop('SIGKILL')));
    await redis.stop();
  };
  return cluster;
}

/** Send budgets no test that is not about them reaches. */
export const FAST_RATES = { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SECOND: '100000' };

/**
 * One cluster (see `startCluster`) for every test of the calling file: started at once (await it
 * at the top of the file), stopped after the file's last test.
 */
export async function fileCluster(options) {
  const cluster = await startCluster(options);
  after(() => cluster.stop());
  return cluster;
}

/**
 * Opens a socket.io connection over WebSocket with no automatic reconnection.
 * Returns { socket, events, welcome, refused, wait(name, pred), count(name), send(text) }:
 * `welcome` resolves with the welcome payload; `refused` resolves with the CONNECT_ERROR message.
 */
export function connectClient(url, auth, opts = {}) {
  const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 5000, ...opts });
  const events = [];
  socket.onAny((name, payload) => events.push({ name, payload, at: Date.now() }));
  let onWelcome, onRefused;
  const refused = new Promise((resolve) => { onRefused = resolve; });
  const welcome = new Promise((resolve, reject) => {
    onWelcome = resolve;
    socket.on('connect_error', (err) => {
      onRefused(err.message);
      reject(new Error(`connect_error: ${err.message}`));
    });
  });
  welcome.catch(() => {});
  socket.on('welcome', (w) => onWelcome(w));
  const closed = new Promise((resolve) => socket.on('disconnect', (reason) => resolve(reason)));
  return {
    socket,
    events,
    welcome,
    refused,
    closed,
    /** Events named `name` so far (payloads). */
    all: (name) => events.filter((e) => e.name === name).map((e) => e.payload),
    /** Waits until an event `name` whose payload satisfies `pred` arrived; resolves with it. */
    wait: (name, pred = () => true, timeoutMs = 10_000) =>
      until(`'${name}' event`, () => events.find((e) => e.name === name && pred(e.payload))?.payload, { timeoutMs, everyMs: 10 }),
    /** Sends `message sent` and resolves with the ack. */
    send: (text) => socket.timeout(10_000).emitWithAck('message sent', text),
    /** Sends an event with an ack and resolves with it. */
    ask: (event, payload) => socket.timeout(10_000).emitWithAck(event, payload),
  };
}
