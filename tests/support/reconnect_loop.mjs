// A user looping reconnects, in a worker thread of its own so that its work does not delay the
// test's other clients: `loops` connections, each opening a connection, waiting for its `welcome`
// or its refusal, closing it and starting again, at most once per `everyMs`.
// The test posts 'count' (answered with { joined, refused, other }) and 'stop' (answered the same
// once every loop has ended).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

/** Starts the loop; resolves with { count(), stop() }, each resolving with the counts. */
export function startReconnectLoop({ urls, tokens, everyMs = 50 }) {
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { urls, tokens, everyMs } });
  const ask = (cmd) => new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.postMessage(cmd);
  });
  return {
    count: () => ask('count'),
    stop: async () => {
      const counts = await ask('stop');
      await worker.terminate();
      return counts;
    },
  };
}

if (!isMainThread) {
  const { urls, tokens, everyMs } = workerData;
  const counts = { joined: 0, refused: 0, other: 0 };
  let stopping = false;
  const once = (url, token) => new Promise((resolve) => {
    const socket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 5000 });
    socket.once('welcome', () => { counts.joined++; socket.close(); resolve(); });
    socket.once('connect_error', (err) => {
      if (err.message === 'rate_limited') counts.refused++;
      else counts.other++;
      socket.close();
      resolve();
    });
  });
  const loop = async (i) => {
    while (!stopping) {
      const next = new Promise((r) => setTimeout(r, everyMs));
      await once(urls[i % urls.length], tokens[i]);
      await next;
    }
  };
  const loops = tokens.map((_, i) => loop(i));
  parentPort.on('message', async (cmd) => {
    if (cmd === 'stop') {
      stopping = true;
      await Promise.all(loops);
    }
    parentPort.postMessage({ ...counts });
  });
}
