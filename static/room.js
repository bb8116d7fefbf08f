// The room page: fetches a room token from the web service, connects to the gateway with the
// vendored socket.io client, and shows members, entries, exits, history and messages.
// Everything from the network is shown with textContent, never as HTML.
(function () {
  'use strict';

  const root = document.getElementById('chat');
  if (!root || typeof window.io !== 'function') return;

  const room = root.dataset.room;
  const me = root.dataset.me;
  const statusEl = document.getElementById('status');
  const membersEl = document.getElementById('members');
  const memberCountEl = document.getElementById('member-count');
  const messagesEl = document.getElementById('messages');
  const olderButton = document.getElementById('older');
  const form = document.getElementById('send-form');
  const input = document.getElementById('message-input');
  const sendButton = document.getElementById('send-button');
  const sendError = document.getElementById('send-error');

  const ERRORS = {
    invalid: 'That message could not be sent.',
    empty: 'Type something first.',
    too_long: 'That message is too long (2000 characters at most).',
    rate_limited: 'You are sending too fast. Wait a moment and try again.',
    unavailable: 'The chat is having trouble storing messages. Try again in a moment.',
    timeout: 'No answer from the server. Your message may not have been sent.',
    offline: 'Not connected. Wait for the connection to come back.',
  };

  const members = new Map(); // id -> name
  const seen = new Set(); // message ids shown
  let lastId = null; // newest message id seen, for `since`
  let oldestId = null; // oldest message id shown, for paging back
  let tokenExp = 0;
  let refreshTimer = null;
  let retryTimer = null;
  let retryDelay = 1000;
  let ended = false;

  function setStatus(text, state) {
    statusEl.textContent = text;
    statusEl.dataset.state = state;
    const online = state === 'connected';
    input.disabled = !online;
    sendButton.disabled = !online;
  }

  async function fetchToken() {
    const res = await fetch(`/api/rooms/${encodeURIComponent(room)}/token`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    if (res.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
      throw new Error('login required');
    }
    if (!res.ok) throw new Error(`token request failed (${res.status})`);
    const body = await res.json();
    tokenExp = body.exp;
    return body;
  }

  // --- rendering ---------------------------------------------------------

  function renderMembers() {
    membersEl.replaceChildren();
    const sorted = [...members.entries()].sort((a, b) => a[1].localeCompare(b[1]));
    for (const [id, name] of sorted) {
      const li = document.createElement('li');
      li.textContent = id === me ? `${name} (you)` : name;
      membersEl.append(li);
    }
    memberCountEl.textContent = `(${members.size})`;
  }

  function compareIds(a, b) {
    const [am, as] = String(a).split('-').map(Number);
    const [bm, bs] = String(b).split('-').map(Number);
    return am - bm || as - bs;
  }

  function formatTime(ts) {
    try {
      return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    } catch {
      return '';
    }
  }

  function messageItem(m) {
    const li = document.createElement('li');
    li.className = m.user && m.user.id === me ? 'message mine' : 'message';
    li.dataset.id = m.id;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'author';
    who.textContent = (m.user && m.user.name) || 'someone';
    const when = document.createElement('time');
    when.dateTime = new Date(m.ts).toISOString();
    when.textContent = formatTime(m.ts);
    meta.append(who, ' ', when);
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = m.text;
    li.append(meta, text);
    return li;
  }

  function notice(text) {
    const li = document.createElement('li');
    li.className = 'notice';
    li.textContent = text;
    messagesEl.append(li);
    scrollToEnd();
  }

  function scrollToEnd() {
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  function addMessage(m) {
    if (!m || typeof m.id !== 'string' || seen.has(m.id)) return;
    seen.add(m.id);
    messagesEl.append(messageItem(m));
    if (!lastId || compareIds(m.id, lastId) > 0) lastId = m.id;
    if (!oldestId || compareIds(m.id, oldestId) < 0) oldestId = m.id;
    scrollToEnd();
  }

  function prependMessages(list) {
    const first = messagesEl.firstChild;
    for (const m of list) {
      if (!m || seen.has(m.id)) continue;
      seen.add(m.id);
      messagesEl.insertBefore(messageItem(m), first);
      if (!oldestId || compareIds(m.id, oldestId) < 0) oldestId = m.id;
    }
  }

  // --- connection --------------------------------------------------------

  let socket = null;

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    const inMs = Math.max(5000, (tokenExp - Date.now() / 1000 - 60) * 1000);
    refreshTimer = setTimeout(async () => {
      try {
        const { token } = await fetchToken();
        socket.timeout(5000).emit('refresh', token, (err, ack) => {
          if (err || !ack || !ack.ok) {
            socket.disconnect();
            reconnectSoon();
            return;
          }
          scheduleRefresh();
        });
      } catch {
        refreshTimer = setTimeout(scheduleRefresh, 10000);
      }
    }, inMs);
  }

  function reconnectSoon() {
    if (ended) return;
    clearTimeout(retryTimer);
    const delay = retryDelay;
    retryDelay = Math.min(retryDelay * 2, 30000);
    setStatus(`Reconnecting in ${Math.round(delay / 1000)} s…`, 'reconnecting');
    retryTimer = setTimeout(() => socket.connect(), delay);
  }

  async function start() {
    let first;
    try {
      first = await fetchToken();
    } catch (e) {
      setStatus('Could not get access to the room. Reload the page to try again.', 'error');
      return;
    }
    socket = window.io(first.gateway_url, {
      transports: ['websocket'],
      reconnectionDelayMax: 10000,
      // Called before every connection attempt: each one gets a fresh token.
      auth: (cb) => {
        const give = (token) => cb(lastId ? { token, since: lastId } : { token });
        if (first) {
          const t = first.token;
          first = null;
          give(t);
          return;
        }
        fetchToken().then((b) => give(b.token), () => give(''));
      },
    });

    socket.on('connect', () => {
      retryDelay = 1000;
      setStatus('Connected', 'connected');
    });

    socket.on('welcome', (w) => {
      members.clear();
      for (const u of (w && w.members) || []) members.set(u.id, u.name);
      renderMembers();
      const history = (w && w.history) || [];
      if (w && w.recovered === false && seen.size > 0) notice('Some messages were missed while you were away.');
      for (const m of history) addMessage(m);
      // Earlier messages exist only if the welcome's history was a full page.
      olderButton.hidden = !oldestId || history.length < 100;
      scheduleRefresh();
    });

    socket.on('user entered', (u) => {
      if (!u || members.has(u.id)) return;
      members.set(u.id, u.name);
      renderMembers();
      notice(`${u.name} entered the room.`);
    });

    socket.on('user exited', (u) => {
      if (!u || !members.has(u.id)) return;
      members.delete(u.id);
      renderMembers();
      notice(`${u.name} left the room.`);
    });

    socket.on('message received', addMessage);

    socket.on('session ended', (e) => {
      const reason = e && e.reason;
      if (reason === 'token_revoked') {
        ended = true;
        setStatus('You were signed out. Log in again to keep chatting.', 'ended');
      } else if (reason === 'shutdown') {
        setStatus('The server is restarting; reconnecting…', 'reconnecting');
      } else if (reason === 'slow_consumer') {
        setStatus('The connection fell behind; reconnecting…', 'reconnecting');
      } else {
        setStatus('Session ended; reconnecting…', 'reconnecting');
      }
    });

    socket.on('disconnect', (reason) => {
      clearTimeout(refreshTimer);
      if (ended) return;
      if (reason === 'io server disconnect') {
        // The server closed this connection on purpose: socket.io will not retry by itself.
        reconnectSoon();
      } else {
        setStatus('Connection lost; reconnecting…', 'reconnecting');
      }
    });

    socket.on('connect_error', (err) => {
      const code = err && err.message;
      if (code === 'token_revoked') {
        ended = true;
        setStatus('You were signed out. Log in again to keep chatting.', 'ended');
        return;
      }
      if (code === 'room_unknown') {
        ended = true;
        setStatus('This room does not exist on the chat server.', 'error');
        return;
      }
      // Refusals from the server are not retried by socket.io; transport errors are.
      if (socket.active) setStatus('Connection failed; retrying…', 'reconnecting');
      else reconnectSoon();
    });
  }

  // --- sending and paging ------------------------------------------------

  function send() {
    const text = input.value;
    sendError.textContent = '';
    if (text.trim() === '') {
      sendError.textContent = ERRORS.empty;
      return;
    }
    if (!socket || !socket.connected) {
      sendError.textContent = ERRORS.offline;
      return;
    }
    sendButton.disabled = true;
    socket.timeout(8000).emit('message sent', text, (err, ack) => {
      sendButton.disabled = !socket.connected;
      if (err) {
        sendError.textContent = ERRORS.timeout;
        return;
      }
      if (ack && ack.ok) {
        input.value = '';
        input.focus();
      } else {
        sendError.textContent = ERRORS[ack && ack.error] || ERRORS.invalid;
      }
    });
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });

  olderButton.addEventListener('click', () => {
    if (!socket || !socket.connected || !oldestId) return;
    olderButton.disabled = true;
    socket.timeout(8000).emit('history', { before: oldestId, limit: 50 }, (err, ack) => {
      olderButton.disabled = false;
      if (err || !ack || !ack.ok) {
        sendError.textContent = 'Could not load earlier messages.';
        return;
      }
      const list = ack.messages || [];
      prependMessages(list);
      if (list.length < 50) olderButton.hidden = true;
    });
  });

  setStatus('Connecting…', 'connecting');
  start();
})();
