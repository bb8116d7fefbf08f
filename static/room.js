// The room page: fetches a room token from the web service, connects to the gateway with the
// vendored socket.io client, and shows members, entries, exits, history and messages, who is
// typing, edits and deletions, links, where you left off, mentions and the unread count in the
// title of a hidden tab. Everything from the network is shown with textContent and DOM
// APIs, never as HTML.
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
  const typingEl = document.getElementById('typing');
  const notifyButton = document.getElementById('notify');
  const baseTitle = document.title;

  const ERRORS = {
    invalid: 'That message could not be sent.',
    empty: 'Type something first.',
    too_long: 'That message is too long (2000 characters at most).',
    rate_limited: 'You are sending too fast. Wait a moment and try again.',
    unavailable: 'The chat is having trouble storing messages. Try again in a moment.',
    timeout: 'No answer from the server. Your message may not have been sent.',
    offline: 'Not connected. Wait for the connection to come back.',
    not_found: 'That message is no longer there.',
    forbidden: 'You can only change your own messages.',
  };
  const GROUP_MS = 5 * 60 * 1000; // one author's messages within this are grouped
  const TYPING_SHOWN_MS = 5000; // "is typing" lasts this long after the last signal
  const TYPING_EVERY_MS = 1000; // we signal our own typing at most this often

  const members = new Map(); // id -> name
  const seen = new Set(); // message ids shown (or deleted)
  const shown = new Map(); // id -> { m, li } of each message on screen
  const typers = new Map(); // user id -> { name, timer }
  let myName = '';
  let welcomed = false; // the first welcome places the "New messages" divider
  let hiddenCount = 0; // new messages while the tab is hidden
  let lastTypingSent = 0;
  let readSent = null; // the newest id we told the server we read
  let editing = null; // { id, li, form } of the message being edited
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

  // http(s) URLs become links; any other scheme stays text. Built with DOM APIs only.
  const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;

  function linkify(el, text) {
    el.replaceChildren();
    let at = 0;
    for (const match of text.matchAll(URL_RE)) {
      let url = match[0].replace(/[.,;:!?)\]}'"]+$/, '');
      let href = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === 'http:' || parsed.protocol === 'https:') href = parsed.href;
      } catch {
        href = null;
      }
      if (!href) continue;
      el.append(text.slice(at, match.index));
      const a = document.createElement('a');
      a.href = href;
      a.rel = 'noopener noreferrer nofollow';
      a.target = '_blank';
      a.textContent = url;
      el.append(a);
      at = match.index + url.length;
    }
    el.append(text.slice(at));
  }

  function mentionsMe(text) {
    return myName !== '' && String(text).toLowerCase().includes(`@${myName.toLowerCase()}`);
  }

  function setText(li, m) {
    const text = li.querySelector('.text');
    linkify(text, m.text);
    li.classList.toggle('mention', m.user.id !== me && mentionsMe(m.text));
    let mark = li.querySelector('.edited');
    if (m.edited_ts && !mark) {
      mark = document.createElement('span');
      mark.className = 'edited';
      mark.textContent = 'edited';
      li.querySelector('.meta').append(' ', mark);
    }
  }

  function messageItem(m) {
    const li = document.createElement('li');
    li.className = m.user && m.user.id === me ? 'message mine' : 'message';
    li.dataset.id = m.id;
    li.dataset.author = (m.user && m.user.id) || '';
    li.dataset.ts = String(m.ts);
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
    li.append(meta, text);
    if (m.user && m.user.id === me) {
      const actions = document.createElement('div');
      actions.className = 'actions';
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.className = 'button button-quiet edit';
      edit.textContent = 'Edit';
      edit.setAttribute('aria-label', 'Edit this message');
      edit.addEventListener('click', () => startEdit(m.id));
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'button button-quiet delete';
      del.textContent = 'Delete';
      del.setAttribute('aria-label', 'Delete this message');
      del.addEventListener('click', () => deleteMessage(m.id));
      actions.append(edit, del);
      li.append(actions);
    }
    setText(li, m);
    return li;
  }

  function dayOf(ts) {
    return new Date(ts).toDateString();
  }

  // Groups one author's messages within a few minutes and puts a separator before each new
  // day; run after every change to the list.
  function relayout() {
    for (const sep of messagesEl.querySelectorAll('.day-separator')) sep.remove();
    let prev = null;
    for (const li of [...messagesEl.querySelectorAll('.message')]) {
      const ts = Number(li.dataset.ts);
      if (!prev || dayOf(ts) !== dayOf(Number(prev.dataset.ts))) {
        const sep = document.createElement('li');
        sep.className = 'day-separator';
        sep.setAttribute('role', 'separator');
        sep.textContent = new Date(ts).toLocaleDateString([], { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
        li.before(sep);
        prev = null;
      }
      const grouped = prev && prev.dataset.author === li.dataset.author && ts - Number(prev.dataset.ts) < GROUP_MS
        && prev.nextElementSibling === li;
      li.classList.toggle('grouped', Boolean(grouped));
      prev = li;
    }
  }

  function renderTyping() {
    const names = [...typers.values()].map((t) => t.name);
    if (names.length === 0) typingEl.textContent = '';
    else if (names.length === 1) typingEl.textContent = `${names[0]} is typing…`;
    else if (names.length === 2) typingEl.textContent = `${names[0]} and ${names[1]} are typing…`;
    else typingEl.textContent = 'Several people are typing…';
  }

  function stopTyping(id) {
    const t = typers.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    typers.delete(id);
    renderTyping();
  }

  function onTyping(u) {
    if (!u || typeof u.id !== 'string' || u.id === me) return;
    const t = typers.get(u.id);
    if (t) clearTimeout(t.timer);
    typers.set(u.id, { name: u.name, timer: setTimeout(() => stopTyping(u.id), TYPING_SHOWN_MS) });
    renderTyping();
  }

  function atBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
  }

  // Marks the room read up to the newest message once it can be seen.
  function markRead() {
    if (!lastId || document.hidden || !atBottom() || !socket || !socket.connected) return;
    if (readSent && compareIds(lastId, readSent) <= 0) return;
    readSent = lastId;
    socket.emit('read', { id: lastId }, () => {});
  }

  function updateTitle() {
    document.title = hiddenCount > 0 ? `(${hiddenCount}) ${baseTitle}` : baseTitle;
  }

  function notify(m) {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    if (!document.hidden && document.hasFocus()) return;
    try {
      new Notification(`${m.user.name} mentioned you in ${room}`, { body: m.text, tag: m.id });
    } catch {
      // Some browsers allow notifications only from a service worker: the highlight remains.
    }
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

  function addMessage(m, live = true) {
    if (!m || typeof m.id !== 'string' || !m.user || seen.has(m.id)) return;
    seen.add(m.id);
    const li = messageItem(m);
    shown.set(m.id, { m, li });
    messagesEl.append(li);
    if (!lastId || compareIds(m.id, lastId) > 0) lastId = m.id;
    if (!oldestId || compareIds(m.id, oldestId) < 0) oldestId = m.id;
    stopTyping(m.user.id);
    if (live && m.user.id !== me) {
      if (document.hidden) {
        hiddenCount += 1;
        updateTitle();
      }
      if (mentionsMe(m.text)) notify(m);
    }
    relayout();
    scrollToEnd();
    markRead();
  }

  function applyEdit(e) {
    const entry = e && shown.get(e.id);
    if (!entry || typeof e.text !== 'string') return;
    entry.m = { ...entry.m, text: e.text, edited_ts: e.edited_ts };
    setText(entry.li, entry.m);
  }

  function applyDelete(e) {
    const entry = e && shown.get(e.id);
    if (!entry) return;
    if (editing && editing.id === e.id) stopEdit();
    entry.li.remove();
    shown.delete(e.id);
    relayout();
  }

  // Where you left off: a divider before the first of `unread` messages at the end.
  function placeDivider(unread) {
    for (const old of messagesEl.querySelectorAll('.new-divider')) old.remove();
    const list = [...messagesEl.querySelectorAll('.message')];
    if (unread <= 0 || list.length === 0) return;
    const first = list[Math.max(0, list.length - unread)];
    const divider = document.createElement('li');
    divider.className = 'new-divider';
    divider.setAttribute('role', 'separator');
    divider.textContent = 'New messages';
    first.before(divider);
    relayout();
  }

  // --- editing and deleting ----------------------------------------------

  function startEdit(id) {
    const entry = shown.get(id);
    if (!entry) return;
    if (editing) stopEdit();
    const form = document.createElement('form');
    form.className = 'edit-form';
    const label = document.createElement('label');
    label.className = 'visually-hidden';
    label.textContent = 'Edit message';
    const box = document.createElement('textarea');
    box.className = 'edit-input';
    box.rows = 2;
    box.maxLength = 2000;
    box.value = entry.m.text;
    label.append(box);
    const save = document.createElement('button');
    save.type = 'submit';
    save.className = 'button';
    save.textContent = 'Save';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'button button-quiet';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => stopEdit(true));
    form.append(label, save, cancel);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      saveEdit(id, box.value);
    });
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        stopEdit(true);
      } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        saveEdit(id, box.value);
      }
    });
    entry.li.querySelector('.text').hidden = true;
    entry.li.append(form);
    editing = { id, li: entry.li, form };
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  function stopEdit(refocus = false) {
    if (!editing) return;
    editing.form.remove();
    editing.li.querySelector('.text').hidden = false;
    editing = null;
    if (refocus) input.focus();
  }

  function saveEdit(id, text) {
    if (!socket || !socket.connected) {
      sendError.textContent = ERRORS.offline;
      return;
    }
    const entry = shown.get(id);
    if (entry && entry.m.text === text) {
      stopEdit(true);
      return;
    }
    socket.timeout(8000).emit('message edit', { id, text }, (err, ack) => {
      if (err) {
        sendError.textContent = ERRORS.timeout;
      } else if (ack && ack.ok) {
        sendError.textContent = '';
        stopEdit(true);
      } else {
        sendError.textContent = ERRORS[ack && ack.error] || ERRORS.invalid;
      }
    });
  }

  function deleteMessage(id) {
    if (!socket || !socket.connected) {
      sendError.textContent = ERRORS.offline;
      return;
    }
    socket.timeout(8000).emit('message delete', { id }, (err, ack) => {
      if (err) sendError.textContent = ERRORS.timeout;
      else if (!ack || !ack.ok) sendError.textContent = ERRORS[ack && ack.error] || ERRORS.invalid;
      else input.focus();
    });
  }

  function lastOwnMessage() {
    let last = null;
    for (const [id, { m }] of shown) {
      if (m.user.id === me && (!last || compareIds(id, last) > 0)) last = id;
    }
    return last;
  }

  function prependMessages(list) {
    const first = messagesEl.firstChild;
    for (const m of list) {
      if (!m || !m.user || seen.has(m.id)) continue;
      seen.add(m.id);
      const li = messageItem(m);
      shown.set(m.id, { m, li });
      messagesEl.insertBefore(li, first);
      if (!oldestId || compareIds(m.id, oldestId) < 0) oldestId = m.id;
    }
    relayout();
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
      myName = (w && w.you && w.you.name) || myName;
      members.clear();
      for (const u of (w && w.members) || []) members.set(u.id, u.name);
      renderMembers();
      const history = (w && w.history) || [];
      if (w && w.recovered === false && seen.size > 0) notice('Some messages were missed while you were away.');
      for (const m of history) addMessage(m, false);
      for (const c of (w && w.changes) || []) {
        if (c && c.deleted) applyDelete(c);
        else applyEdit(c);
      }
      if (!welcomed) {
        welcomed = true;
        placeDivider(Number((w && w.unread) || 0));
      }
      // Messages gone from a fresh history were deleted meanwhile.
      if (w && w.recovered === false) {
        const kept = new Set(history.map((m) => m.id));
        const oldest = history.length > 0 ? history[0].id : null;
        for (const id of [...shown.keys()]) {
          if (!kept.has(id) && oldest && compareIds(id, oldest) > 0) applyDelete({ id });
        }
      }
      markRead();
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

    socket.on('message received', (m) => addMessage(m));
    socket.on('message edited', applyEdit);
    socket.on('message deleted', applyDelete);
    socket.on('user typing', onTyping);

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
    } else if (e.key === 'ArrowUp' && input.value === '') {
      const id = lastOwnMessage();
      if (id) {
        e.preventDefault();
        startEdit(id);
      }
    }
  });

  input.addEventListener('input', () => {
    const now = Date.now();
    if (input.value === '' || !socket || !socket.connected || now - lastTypingSent < TYPING_EVERY_MS) return;
    lastTypingSent = now;
    socket.emit('typing');
  });

  messagesEl.addEventListener('scroll', markRead);

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    hiddenCount = 0;
    updateTitle();
    markRead();
  });

  if (notifyButton && typeof Notification !== 'undefined' && Notification.permission === 'default') {
    notifyButton.hidden = false;
    notifyButton.addEventListener('click', async () => {
      try {
        await Notification.requestPermission();
      } finally {
        notifyButton.hidden = true;
      }
    });
  }

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
