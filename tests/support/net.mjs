// Free loopback ports and waiting for things, without sleeps where an event can be awaited.
import net from 'node:net';

/**
 * Where test servers listen: below the kernel's range of ephemeral ports (32768–60999 on Linux),
 * so the local port of an outgoing connection never takes the port of a server a test stopped
 * and is about to start again (a Redis restart, a cluster node's return), and a cluster node's
 * bus port (its port + 10000) stays below it too.
 */
const PORTS = { from: 10000, to: 22767 };

/** A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range. */
export async function freePort() {
  for (let attempt = 0; ; attempt++) {
    const port = PORTS.from + Math.floor(Math.random() * (PORTS.to - PORTS.from + 1));
    const free = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', (e) => (e.code === 'EADDRINUSE' || e.code === 'EACCES' ? resolve(false) : reject(e)));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
    if (attempt > 1000) throw new Error('no free port found');
  }
}

/**
 * Polls `check` (async, truthy when done) every `everyMs` until `timeoutMs`; throws with `what`.
 * An error thrown by `check` with `final: true` (say, the awaited process exited) ends the wait at once.
 */
export async function until(what, check, { timeoutMs = 10_000, everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      if (e.final) throw e;
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolves with the first event `name` of `emitter` (its arguments as an array), or rejects after `timeoutMs`. */
export function nextEvent(emitter, name, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, onEvent);
      reject(new Error(`no '${name}' within ${timeoutMs} ms`));
    }, timeoutMs);
    function onEvent(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(name, onEvent);
  });
}

/**
 * Opens a TCP connection to 127.0.0.1:`port`, sends `partial` (some bytes of a request head, or
 * nothing when null) and never sends the rest. Resolves with the milliseconds until the server
 * closed it; rejects if it is still open after `limitMs`.
 */
export function closedAfter(port, partial, limitMs = 5000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      const opened = Date.now();
      if (partial) sock.write(partial);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - opened);
      });
    });
    sock.on('error', () => {});
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`the server kept the connection open for ${limitMs} ms`));
    }, limitMs);
  });
}

/**
 * One raw HTTP/1.1 keep-alive connection to 127.0.0.1:`port`, for tests of connection limits.
 * `get(path)` sends a GET on it and resolves with the answer's status, or null once the server
 * has closed the connection; `closed` resolves when the server closes it; `close()` ends it.
 */
export async function rawConnection(port) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buffered = Buffer.alloc(0);
  let waiting = null;
  const closed = new Promise((resolve) => sock.once('close', resolve));
  /** The first whole response in the buffer, taken out of it: its status, or undefined. */
  const takeResponse = () => {
    const end = buffered.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = buffered.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (buffered.length < end + 4 + length) return undefined;
    buffered = buffered.subarray(end + 4 + length);
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  };
  sock.on('data', (d) => {
    buffered = Buffer.concat([buffered, d]);
    waiting?.();
  });
  closed.then(() => waiting?.());
  return {
    closed,
    get(path) {
      return new Promise((resolve) => {
        waiting = () => {
          const status = takeResponse();
          if (status !== undefined) resolve(status);
          else if (sock.destroyed || sock.readableEnded) resolve(null);
          else return;
          waiting = null;
        };
        if (sock.destroyed || sock.readableEnded) waiting();
        else sock.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`, () => {});
      });
    },
    close() {
      sock.destroy();
      return closed;
    },
  };
}
