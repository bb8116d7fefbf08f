// Real Redis topologies for tests, on free loopback ports in temporary directories, with no
// persistence: a single redis-server, a 6-node Redis Cluster (3 primaries, 3 replicas) and a
// primary + replica watched by 3 sentinels. Faults are made the way they happen in production:
// SIGKILL of a primary, a slot moved by the cluster's own resharding protocol. Commands go through
// redis-cli (redis.mjs). The Rust tests drive the same topologies through topology_cli.mjs.
//
//   const redis = await startRedisTopology(process.env.CHAT_TEST_REDIS ?? 'single');
//   ... REDIS_URL: redis.url ...
//   await redis.stop();
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killedOnExit } from './children.mjs';
import { freePort, until } from './net.mjs';
import { infoFields, redis, RedisError, startRedis } from './redis.mjs';

/** The topology kinds `startRedisTopology` knows. */
export const TOPOLOGIES = ['single', 'cluster', 'sentinel'];

/**
 * Starts the topology `kind` ('single' | 'cluster' | 'sentinel'). `args` are extra redis-server
 * arguments for every data node (not the sentinels), e.g. `['--maxmemory', '16mb']`.
 * 'single' is `startRedis` of redis.mjs, with `kind: 'single'` added.
 */
export async function startRedisTopology(kind = 'single', { args = [] } = {}) {
  switch (kind) {
    case 'single':
      return Object.assign(await startRedis(args), { kind: 'single' });
    case 'cluster':
      return startRedisCluster({ args });
    case 'sentinel':
      return startRedisSentinel({ args });
    default:
      throw new Error(`unknown Redis topology '${kind}' (expected one of ${TOPOLOGIES.join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/** Spawns `bin args` and waits until it answers PING on `port`; rejects if it exits first (port taken). */
async function spawnRedis(bin, args, port) {
  const proc = killedOnExit(spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  proc.exited = new Promise((r) => proc.once('exit', r));
  await until(`${bin} on ${port}`, async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) throw Object.assign(new Error(`${bin} on ${port} exited: ${output.trim().split('\n').pop()}`), { exited: true, final: true });
    return (await redis(port, 'PING')) === 'PONG';
  }, { timeoutMs: 15_000, everyMs: 20 }).catch((e) => {
    proc.kill('SIGKILL');
    throw e;
  });
  return proc;
}

/** SIGKILLs `proc` (if still running) and waits for it to be gone. */
async function sigkill(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGKILL');
  await proc.exited;
}

const isAlive = (proc) => proc && proc.exitCode === null && proc.signalCode === null;

/** Runs `fn` with fresh free ports until it does not fail for a port taken by someone else. */
async function withRetriesOnTakenPorts(fn) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!e.exited || attempt >= 5) throw e;
    }
  }
}

/**
 * Empties a data node's directory but for `keep`: a replica saves what it synced as dump.rdb,
 * which a restart would otherwise load.
 */
function wipe(dir, keep = []) {
  for (const name of fs.readdirSync(dir)) if (!keep.includes(name)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
}

/** A map reply as an object, whether it came as a RESP3 map or as a flat [field, value, …] array. */
const asMap = (v) => (Array.isArray(v) ? Object.fromEntries(v.flatMap((x, i) => (i % 2 ? [] : [[x, v[i + 1]]]))) : v);

const dataNodeArgs = (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];

// ---------------------------------------------------------------------------------------------
// Redis Cluster.

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with. */
function crc16(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let k = 0; k < 8; k++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The hash slot of `key`: CRC16 mod 16384 of the key, or of its `{hash tag}` when that is non-empty. */
export function keySlot(key) {
  const bytes = Buffer.from(key);
  const open = bytes.indexOf('{');
  if (open >= 0) {
    const close = bytes.indexOf('}', open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384;
  }
  return crc16(bytes) % 16384;
}

/** `CLUSTER NODES` as [{ id, port, flags, primaryId, slots: [[from, to]], failed }]. */
function parseClusterNodes(text) {
  return text.trim().split('\n').map((line) => {
    const [id, addr, flags, primaryId, , , , , ...slots] = line.trim().split(' ');
    return {
      id,
      port: Number(addr.split('@')[0].split(':').pop()),
      flags: flags.split(','),
      primaryId: primaryId === '-' ? null : primaryId,
      failed: flags.split(',').some((f) => f === 'fail' || f === 'fail?'),
      slots: slots.filter((s) => !s.startsWith('[')).map((s) => s.split('-').map(Number)).map(([a, b = a]) => [a, b]),
    };
  });
}

/**
 * Starts a Redis Cluster of 3 primaries and 3 replicas (`redis-cli --cluster create
 * --cluster-replicas 1`) and waits until every node reports `cluster_state:ok`, every slot is
 * covered and every replica is in sync. Resolves with:
 *
 * - `kind: 'cluster'`, `url`: `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=…` (fred's form)
 * - `port`: the first node's port; `nodes`: [{ port, busPort, role: 'primary'|'replica', id, proc, alive }],
 *   roles as of the last change this harness made (`refresh()` reads them again)
 * - `command(cmd)`: a command (see `redis` of redis.mjs for its forms and replies) sent to the first
 *   live primary, following `-MOVED`/`-ASK` to the node serving its key (or shard channel);
 *   keyless commands (PUBLISH, CLIENT …) run on that primary
 * - `commandOn(port, cmd)`: to that node; `commandAll(cmd)`: to every live primary, an array of replies
 * - `primaries()`: the live primaries; `ownerOf(key)`: the node serving the key's slot; `keySlot(key)`
 * - `killPrimaryOf(key)`: SIGKILLs that primary, waits until its replica is promoted and the cluster
 *   is ok; resolves with { killed, promoted }
 * - `migrateSlotOf(key, toPort, { batch = 100, pauseMs = 0 })`: moves the key's slot with its keys to the
 *   primary on `toPort` by the resharding protocol, as `redis-cli --cluster reshard` does (SETSLOT
 *   IMPORTING/MIGRATING, MIGRATE … KEYS `batch` at a time, `pauseMs` between batches so that live
 *   traffic meets every intermediate state, then SETSLOT NODE on every primary); resolves with
 *   { slot, from, to, keys }
 * - `revive()`: restarts killed nodes with their old cluster config; they rejoin as replicas
 * - `kill()`: SIGKILLs every node (the whole cluster is lost); `start()` after it brings up an empty
 *   cluster on the same ports (new node ids), as a restart that lost its data
 * - `stop()`: SIGKILLs everything and removes the temporary directories
 */
export async function startRedisCluster({ args = [], primaries = 3 } = {}) {
  const count = primaries * 2;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-redis-cluster-'));
  const nodes = [];
  const nodeArgs = (node) => [
    ...dataNodeArgs(node.port, node.dir),
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-port', String(node.busPort),
    // Failure detected in about a second, so a failover completes in a few.
    '--cluster-node-timeout', '1000',
    ...args.map(String),
  ];
  const startNode = async (node) => {
    node.proc = await spawnRedis('redis-server', nodeArgs(node), node.port);
    node.alive = true;
  };
  const cleanUp = async () => {
    await Promise.all(nodes.map((n) => sigkill(n.proc)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const node = { dir: path.join(root, `node-${i}`), role: i < primaries ? 'primary' : 'replica' };
      fs.mkdirSync(node.dir);
      nodes.push(node);
      await withRetriesOnTakenPorts(async () => {
        node.port = await freePort();
        node.busPort = await freePort();
        await startNode(node);
      });
    }
  } catch (e) {
    await cleanUp();
    throw e;
  }

  const live = () => nodes.filter((n) => isAlive(n.proc));
  const byPort = (port) => nodes.find((n) => n.port === port);

  /** Reads roles and ids from a live node's `CLUSTER NODES`. */
  const refresh = async () => {
    const view = parseClusterNodes(await redis(live()[0].port, 'CLUSTER NODES'));
    for (const node of nodes) {
      node.alive = isAlive(node.proc);
      const seen = view.find((v) => v.port === node.port);
      if (!seen) continue;
      node.id = seen.id;
      node.role = seen.flags.includes('master') ? 'primary' : 'replica';
      node.primaryId = seen.primaryId;
    }
    return nodes;
  };

  /**
   * True when every live node says `cluster_state:ok`, knows `known` nodes, and all of them agree on
   * one slot map covering all 16384 slots with live owners only, and every live replica is in sync.
   */
  const converged = async (known = count) => {
    let agreed;
    for (const node of live()) {
      const info = infoFields(await redis(node.port, 'CLUSTER INFO'));
      if (info.cluster_state !== 'ok' || Number(info.cluster_slots_ok) !== 16384 || Number(info.cluster_known_nodes) !== known) return false;
      const view = parseClusterNodes(await redis(node.port, 'CLUSTER NODES'));
      if (view.some((v) => v.flags.includes('handshake') || v.flags.includes('noaddr'))) return false;
      const owners = view.filter((v) => v.flags.includes('master') && v.slots.length > 0);
      if (owners.some((o) => o.failed || !isAlive(byPort(o.port)?.proc))) return false;
      const map = JSON.stringify(owners.map((o) => [o.port, o.slots]).sort((a, b) => a[0] - b[0]));
      if (agreed !== undefined && map !== agreed) return false;
      agreed = map;
      const me = view.find((v) => v.flags.includes('myself'));
      if (me.flags.includes('slave')) {
        const repl = infoFields(await redis(node.port, 'INFO replication'));
        if (repl.master_link_status !== 'up') return false;
      }
    }
    return true;
  };
  const waitConverged = (what, known) => until(what, () => converged(known), { timeoutMs: 30_000, everyMs: 100 });

  const create = async () => {
    await new Promise((resolve, reject) => {
      execFile('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
        { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`redis-cli --cluster create failed: ${stderr || stdout}`)) : resolve()));
    });
    await waitConverged('the new cluster to be ok on every node');
    await refresh();
  };

  const cluster = {
    kind: 'cluster',
    nodes,
    url: `redis-cluster://127.0.0.1:${nodes[0].port}?${nodes.slice(1).map((n) => `node=127.0.0.1:${n.port}`).join('&')}`,
    port: nodes[0].port,
    keySlot,
    refresh,
  };

  try {
    await create();
  } catch (e) {
    await cleanUp();
    throw e;
  }

  cluster.primaries = async () => (await refresh()).filter((n) => n.alive && n.role === 'primary');

  /** The node serving `key`'s slot, according to a live node's slot map. */
  cluster.ownerOf = async (key) => {
    const slot = keySlot(key);
    for (const [from, to, [, port]] of await redis(live()[0].port, 'CLUSTER SLOTS')) {
      if (slot >= from && slot <= to) return byPort(Number(port));
    }
    throw new Error(`no node serves slot ${slot}`);
  };

  cluster.commandOn = (port, cmd) => redis(port, cmd);
  cluster.commandAll = async (cmd) => Promise.all((await cluster.primaries()).map((n) => redis(n.port, cmd)));

  cluster.command = async (cmd) => {
    // Sent to the first live primary, whose redis-cli follows -MOVED and -ASK to the node serving
    // the key; a slot moving or a failover in progress: wait out TRYAGAIN and CLUSTERDOWN. The
    // roles known since this harness's last change, without asking the cluster again: a test
    // that races its commands against a client's reconnection needs them to follow each other fast.
    const port = (live().find((n) => n.role === 'primary') ?? (await cluster.primaries())[0]).port;
    const { reply } = await until(`'${cmd}' on the cluster`, async () => {
      try {
        return { reply: await redis(port, cmd, { cluster: true }) };
      } catch (e) {
        if (e instanceof RedisError && !/^(TRYAGAIN|CLUSTERDOWN) /.test(e.message)) throw Object.assign(e, { final: true });
        throw e;
      }
    }, { timeoutMs: 15_000, everyMs: 20 });
    return reply;
  };

  cluster.killPrimaryOf = async (key) => {
    const killed = await cluster.ownerOf(key);
    const replicas = nodes.filter((n) => n.primaryId === killed.id && n.alive);
    if (replicas.length === 0) throw new Error(`the primary on ${killed.port} has no live replica to promote`);
    await sigkill(killed.proc);
    killed.alive = false;
    await waitConverged(`a replica of ${killed.port} to take over`);
    await refresh();
    const promoted = await cluster.ownerOf(key);
    if (!replicas.includes(promoted)) throw new Error(`slot of '${key}' is served by ${promoted.port}, not by a replica of ${killed.port}`);
    return { killed, promoted };
  };

  cluster.migrateSlotOf = async (key, toPort, { batch = 100, pauseMs = 0 } = {}) => {
    const slot = keySlot(key);
    const from = await cluster.ownerOf(key);
    const to = byPort(toPort);
    if (!to || !to.alive || to.role !== 'primary') throw new Error(`${toPort} is not a live primary of this cluster`);
    if (to === from) return { slot, from, to, keys: 0 };
    await redis(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id]);
    await redis(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id]);
    let moved = 0;
    for (;;) {
      const keys = await redis(from.port, ['CLUSTER', 'GETKEYSINSLOT', slot, batch]);
      if (keys.length === 0) break;
      // An empty key and the KEYS form: several keys per MIGRATE, atomically per batch.
      await redis(from.port, ['MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys]);
      moved += keys.length;
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
    // The new owner first (it bumps its epoch), then the old one, then everybody else.
    const others = (await cluster.primaries()).filter((n) => n !== to && n !== from);
    for (const node of [to, from, ...others]) await redis(node.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    await waitConverged(`slot ${slot} to be served by ${to.port} everywhere`, nodes.length);
    if ((await cluster.ownerOf(key)) !== to) throw new Error(`slot ${slot} did not move to ${to.port}`);
    return { slot, from, to, keys: moved };
  };

  cluster.revive = async () => {
    const dead = nodes.filter((n) => !isAlive(n.proc));
    for (const node of dead) {
      wipe(node.dir, ['nodes.conf']);
      await startNode(node);
    }
    await waitConverged('revived nodes to rejoin as replicas');
    await refresh();
    return dead;
  };

  cluster.kill = async () => {
    await Promise.all(nodes.map(async (n) => {
      await sigkill(n.proc);
      n.alive = false;
    }));
  };
  cluster.start = async () => {
    for (const node of nodes) {
      wipe(node.dir);
      await startNode(node);
    }
    await create();
  };
  cluster.stop = cleanUp;
  return cluster;
}

// ---------------------------------------------------------------------------------------------
// Sentinel.

/**
 * Starts a primary, one replica (`--replicaof`) and 3 sentinels monitoring them as `chat`
 * (quorum 2, down after 1 s: a failover completes in a few seconds), and waits until every
 * sentinel knows the replica and the other two sentinels. Resolves with:
 *
 * - `kind: 'sentinel'`, `url`: `redis-sentinel://127.0.0.1:S1?node=127.0.0.1:S2&node=127.0.0.1:S3&sentinelServiceName=chat`
 * - `serviceName`, `sentinels`: [{ port, proc }], `data`: [{ port, proc }] (the two data nodes)
 * - `port`, `primaryPort()`: the current primary's port, as a sentinel reports it
 *   (`SENTINEL get-master-addr-by-name`)
 * - `command(cmd)`: a command to the current primary (see `redis` of redis.mjs); `commandOn(port, cmd)`
 * - `failover()`: SIGKILLs the primary, waits until every sentinel reports the promoted replica and it
 *   answers `ROLE` as master; resolves with { killed, promoted } (ports)
 * - `revive()`: restarts killed data nodes, empty, as replicas of the current primary
 * - `pauseReplica()`: SIGSTOPs the replica (it stays connected and stops answering, as a replica
 *   stalled by its disk, its host or the network would); resolves with its port. `resumeReplica()`
 *   SIGCONTs it and waits until it is in sync with the primary again
 * - `kill()`: SIGKILLs both data nodes (the data is lost; the sentinels keep running); `start()` after
 *   it restarts them empty, the old primary's port as primary, and waits until the sentinels see it
 * - `stop()`: SIGKILLs everything and removes the temporary directories
 */
export async function startRedisSentinel({ args = [], serviceName = 'chat' } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-redis-sentinel-'));
  const data = [];
  const sentinels = [];
  const startData = async (node, primaryPort, extra = []) => {
    const replicaOf = primaryPort ? ['--replicaof', '127.0.0.1', String(primaryPort)] : [];
    node.proc = await spawnRedis('redis-server', [...dataNodeArgs(node.port, node.dir), ...replicaOf, ...args.map(String), ...extra], node.port);
  };
  const replicaInSync = async (port) => infoFields(await redis(port, 'INFO replication')).master_link_status === 'up';

  const cleanUp = async () => {
    await Promise.all([...data, ...sentinels].map((n) => sigkill(n.proc)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 2; i++) {
      const node = { dir: path.join(root, `data-${i}`) };
      fs.mkdirSync(node.dir);
      await withRetriesOnTakenPorts(async () => {
        node.port = await freePort();
        await startData(node, i === 0 ? null : data[0].port);
      });
      data.push(node);
    }
    await until('the replica to sync', () => replicaInSync(data[1].port), { timeoutMs: 15_000 });
    for (let i = 0; i < 3; i++) {
      const node = { dir: path.join(root, `sentinel-${i}`) };
      fs.mkdirSync(node.dir);
      await withRetriesOnTakenPorts(async () => {
        node.port = await freePort();
        // Sentinels rewrite their configuration file, so each one gets its own.
        const conf = path.join(node.dir, 'sentinel.conf');
        fs.writeFileSync(conf, [
          `port ${node.port}`,
          'bind 127.0.0.1',
          `dir ${node.dir}`,
          `sentinel monitor ${serviceName} 127.0.0.1 ${data[0].port} 2`,
          `sentinel down-after-milliseconds ${serviceName} 1000`,
          `sentinel failover-timeout ${serviceName} 5000`,
          `sentinel parallel-syncs ${serviceName} 1`,
          '',
        ].join('\n'));
        node.proc = await spawnRedis('redis-sentinel', [conf, '--loglevel', 'warning'], node.port);
      });
      sentinels.push(node);
    }
  } catch (e) {
    await cleanUp();
    throw e;
  }

  const liveSentinels = () => sentinels.filter((s) => isAlive(s.proc));
  const askedPrimary = async (port) => Number((await redis(port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', serviceName]))[1]);
  /** True when every sentinel says the primary is `port`, healthy, with a replica and 2 other sentinels. */
  const sentinelsAgree = async (port, replicas = 1) => {
    for (const s of liveSentinels()) {
      const m = asMap(await redis(s.port, ['SENTINEL', 'MASTER', serviceName]));
      if (Number(m.port) !== port || m.flags !== 'master' || Number(m['num-other-sentinels']) !== liveSentinels().length - 1) return false;
      const known = (await redis(s.port, ['SENTINEL', 'REPLICAS', serviceName]))
        .map(asMap)
        .filter((r) => r.flags === 'slave' && r['master-link-status'] === 'ok');
      if (known.length < replicas) return false;
    }
    return true;
  };
  const waitAgree = (what, port, replicas) => until(what, () => sentinelsAgree(port, replicas), { timeoutMs: 30_000, everyMs: 100 });

  try {
    await waitAgree('the sentinels to know the replica and each other', data[0].port, 1);
  } catch (e) {
    await cleanUp();
    throw e;
  }

  const setup = {
    kind: 'sentinel',
    serviceName,
    sentinels,
    data,
    port: data[0].port,
    url: `redis-sentinel://127.0.0.1:${sentinels[0].port}?${sentinels.slice(1).map((s) => `node=127.0.0.1:${s.port}`).join('&')}&sentinelServiceName=${serviceName}`,
  };
  setup.primaryPort = () => askedPrimary(liveSentinels()[0].port);
  setup.commandOn = (port, cmd) => redis(port, cmd);
  setup.command = async (cmd) => setup.commandOn(await setup.primaryPort(), cmd);

  setup.failover = async () => {
    const killedPort = await setup.primaryPort();
    const killed = data.find((n) => n.port === killedPort);
    const replica = data.find((n) => n !== killed && isAlive(n.proc));
    if (!replica) throw new Error('no live replica to promote');
    await waitAgree('the sentinels to know a replica to promote', killedPort, 1);
    await sigkill(killed.proc);
    await until(`the sentinels to promote ${replica.port}`, async () => {
      for (const s of liveSentinels()) if ((await askedPrimary(s.port)) !== replica.port) return false;
      return (await redis(replica.port, 'ROLE'))[0] === 'master';
    }, { timeoutMs: 30_000, everyMs: 100 });
    setup.port = replica.port;
    return { killed: killed.port, promoted: replica.port };
  };

  setup.revive = async () => {
    const primary = await setup.primaryPort();
    const dead = data.filter((n) => !isAlive(n.proc));
    // A revived node comes back empty: until it has synced it must not be promoted (a
    // spurious down of the primary, one late pong, would otherwise fail over to it and
    // lose everything), so it starts with replica-priority 0, as an operator's would.
    for (const node of dead) {
      wipe(node.dir);
      await startData(node, primary, ['--replica-priority', '0']);
    }
    // Replicating is what counts (WAIT needs it), as the primary sees it; the sentinels
    // learn of the revived replica from the primary in their own time (a later failover
    // waits for them).
    await until('revived nodes to replicate', async () => {
      const info = await setup.commandOn(primary, 'INFO replication');
      return (info.match(/^slave\d+:.*state=online/gm) ?? []).length >= data.length - 1;
    }, { timeoutMs: 30_000, everyMs: 100 });
    for (const node of dead) await redis(node.port, ['CONFIG', 'SET', 'replica-priority', '100']);
    return dead.map((n) => n.port);
  };

  const replicaNode = async () => {
    const primary = await setup.primaryPort();
    const replica = data.find((n) => n.port !== primary && isAlive(n.proc));
    if (!replica) throw new Error('no live replica');
    return replica;
  };
  setup.pauseReplica = async () => {
    const replica = await replicaNode();
    replica.proc.kill('SIGSTOP');
    replica.paused = true;
    return replica.port;
  };
  setup.resumeReplica = async () => {
    const paused = data.filter((n) => n.paused && isAlive(n.proc));
    const written = Number(infoFields(await setup.command('INFO replication')).master_repl_offset);
    for (const node of paused) {
      node.proc.kill('SIGCONT');
      node.paused = false;
    }
    await until('the resumed replica to catch up', async () => {
      for (const node of paused) {
        const info = infoFields(await redis(node.port, 'INFO replication'));
        if (info.master_link_status !== 'up' || Number(info.slave_repl_offset) < written) return false;
      }
      return true;
    }, { timeoutMs: 30_000, everyMs: 100 });
  };

  setup.kill = async () => {
    await Promise.all(data.map((n) => sigkill(n.proc)));
  };
  setup.start = async () => {
    const primary = data.find((n) => n.port === setup.port);
    for (const node of data) wipe(node.dir);
    await startData(primary, null);
    for (const node of data.filter((n) => n !== primary)) await startData(node, primary.port);
    await waitAgree('the sentinels to see the restarted primary', primary.port, data.length - 1);
  };
  setup.stop = cleanUp;
  return setup;
}
