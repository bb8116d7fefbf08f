// The room page: fetches a room token from the web service, connects to the gateway with the
// vendored socket.io client, and shows members, entries, exits, history and messages, who is
// typing, edits and deletions, links, where you left off, mentions and the unread count in the
// title of a hidden tab; the room's members with their roles and, for its owners and
// moderators, adding, removing, muting and promoting people, deleting anyone's message, and (owners)
// the room's name, topic, announcement setting and deletion. Everything from the network is shown
// with textContent and DOM APIs, never as HTML.
(function () {
  'use strict';

  const root = document.getElementById('chat');
  if (!root || typeof window.io !== 'function') return;

  const room = root.dataset.room;
  const me = root.dataset.me;
  const kind = root.dataset.kind || 'public';
  let roomName = root.dataset.name || room;
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
  let baseTitle = document.title;

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
  // A send refused as `forbidden`: an announcement room or a mute (the ack does not say which).
  const SEND_ERRORS = { ...ERRORS, forbidden: 'You can\'t post in this room right now.' };
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
    const online = state === 'connected' && !ended;
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
    if (!res.ok) {
      const e = new Error(`token request failed (${res.status})`);
      e.status = res.status;
      throw e;
    }
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

  // Edit and Delete on one's own messages; Delete on everyone's for the room's moderators.
  function setActions(li, m) {
    const own = Boolean(m.user && m.user.id === me);
    const want = !ended && (own || canModerate());
    let actions = li.querySelector('.actions');
    if (!want) {
      if (actions) actions.remove();
      return;
    }
    if (actions) return;
    actions = document.createElement('div');
    actions.className = 'actions';
    if (own) {
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.className = 'button button-quiet edit';
      edit.textContent = 'Edit';
      edit.setAttribute('aria-label', 'Edit this message');
      edit.addEventListener('click', () => startEdit(m.id));
      actions.append(edit);
    }
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'button button-quiet delete';
    del.textContent = 'Delete';
    del.setAttribute('aria-label', own ? 'Delete this message' : `Delete this message by ${(m.user && m.user.name) || 'someone'}`);
    del.addEventListener('click', () => deleteMessage(m.id));
    actions.append(del);
    const text = li.querySelector('.text');
    text.after(actions);
  }

  function refreshActions() {
    for (const { m, li } of shown.values()) setActions(li, m);
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
    setActions(li, m);
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
      new Notification(`${m.user.name} mentioned you in ${roomName}`, { body: m.text, tag: m.id });
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

  // --- the room: its members, roles and settings ---------------------------

  const MANAGE_ERRORS = {
    invalid: 'That was not accepted. Check what you typed.',
    forbidden: 'You are not allowed to do that in this room.',
    not_found: 'That is no longer there. The list has been refreshed.',
    conflict: 'The room needs at least one owner: make someone else an owner first.',
    rate_limited: 'Too many changes at once. Wait a moment and try again.',
    unavailable: 'The chat is having trouble. Try again in a moment.',
    network: 'No answer from the server. Check your connection and try again.',
  };
  const ROLE_RANK = { owner: 0, moderator: 1, member: 2 };
  const DETAILS_EVERY_MS = 15000;
  const LOST_GRACE_MS = 3000; // a removal's own `session ended` says it best: wait for it this long
  const MUTE_MS = 60 * 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const roomNameEl = $('room-name');
  const topicEl = $('room-topic');
  const postingBadge = $('room-posting');
  const postingHint = $('posting-hint');
  const roomNotice = $('room-notice');
  const joinButton = $('join-room');
  const leaveButton = $('leave-room');
  const settingsLink = $('settings-link');
  const backLink = $('back-to-rooms');
  const peoplePanel = $('people-panel');
  const peopleEl = $('people');
  const peopleCountEl = $('people-count');
  const peopleError = $('people-error');
  const addForm = $('add-member');
  const addSearch = $('add-member-search');
  const addResults = $('add-member-results');
  const addFound = $('add-member-found');
  const settingsPanel = $('room-settings');
  const settingsForm = $('settings-form');
  const settingsName = $('settings-name');
  const settingsTopic = $('settings-topic');
  const settingsAnnounce = $('settings-announce');
  const settingsSave = $('settings-save');
  const settingsError = $('settings-error');
  const deleteButton = $('delete-room');
  const deleteConfirm = $('delete-confirm');
  const deleteQuestion = $('delete-question');
  const deleteYes = $('delete-yes');
  const deleteNo = $('delete-no');
  const deleteError = $('delete-error');

  let role = null; // the signed-in user's role here: 'owner', 'moderator', 'member' or null
  let posting = 'everyone';
  let topic = '';
  let people = []; // [{ id, name, role }]
  const mutedUntil = new Map(); // user id -> ms, as far as this page knows
  let detailsTimer = null;
  let lostTimer = null;
  let settingsDirty = false;
  let leaving = false;
  let loadingDetails = null;

  class ApiFailure extends Error {
    constructor(code, status) {
      super(code);
      this.code = code;
      this.status = status;
    }
  }

  // A same-origin JSON call to the room API with the session cookie; rejects with the
  // contract's error code. A 401 sends the browser to the sign-in unless told otherwise.
  async function api(method, path, body, { redirectOn401 = true } = {}) {
    const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiFailure('network', 0);
    }
    if (res.status === 401) {
      if (redirectOn401) window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
      throw new ApiFailure('login_required', 401);
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) throw new ApiFailure((data && typeof data.error === 'string' && data.error) || 'unavailable', res.status);
    return data;
  }

  const roomPath = (rest = '') => `/api/rooms/${encodeURIComponent(room)}${rest}`;
  const explain = (e, overrides = {}) => overrides[e.code] || MANAGE_ERRORS[e.code] || MANAGE_ERRORS.unavailable;

  function canModerate() {
    return kind !== 'direct' && (role === 'owner' || role === 'moderator');
  }

  function isOwner() {
    return kind !== 'direct' && role === 'owner';
  }

  function say(text) {
    roomNotice.textContent = text;
  }

  function setName(name) {
    if (!name || name === roomName) return;
    roomName = name;
    roomNameEl.textContent = name;
    baseTitle = `${name} · Chat`;
    updateTitle();
  }

  function applyDetails(d) {
    if (!d || ended) return;
    role = typeof d.role === 'string' ? d.role : null;
    posting = d.posting === 'moderators' ? 'moderators' : 'everyone';
    if (typeof d.name === 'string') setName(d.name);
    topic = typeof d.topic === 'string' ? d.topic : '';
    topicEl.textContent = topic;
    people = Array.isArray(d.people) ? d.people.filter((p) => p && typeof p.id === 'string') : [];
    for (const p of people) {
      if (typeof p.muted_until === 'number') mutedUntil.set(p.id, p.muted_until);
    }
    renderRoomState();
  }

  // Everything that depends on the role, the posting rule and the people.
  function renderRoomState() {
    const announce = posting === 'moderators';
    postingBadge.hidden = !announce;
    const quiet = announce && !canModerate();
    postingHint.hidden = !quiet;
    input.setAttribute('aria-describedby', quiet ? 'send-hint posting-hint send-error' : 'send-hint send-error');
    joinButton.hidden = ended || kind !== 'public' || role !== null;
    leaveButton.hidden = ended || role === null;
    settingsLink.hidden = ended || !isOwner();
    settingsPanel.hidden = ended || !isOwner();
    if (isOwner() && !settingsDirty) {
      settingsName.value = roomName;
      settingsTopic.value = topic;
      settingsAnnounce.checked = announce;
    }
    addForm.hidden = ended || !canModerate();
    renderPeople();
    refreshActions();
  }

  function timeOf(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  // What the signed-in user may do to `p`: owners anything to anyone but themselves; moderators
  // remove and mute members.
  function actionsFor(p) {
    if (p.id === me || ended) return [];
    const list = [];
    const muted = (mutedUntil.get(p.id) || 0) > Date.now();
    if (isOwner()) {
      for (const r of ['owner', 'moderator', 'member']) {
        if (p.role !== r) list.push({ key: `role-${r}`, text: r === 'owner' ? 'Make owner' : r === 'moderator' ? 'Make moderator' : 'Make member', run: () => setRole(p, r) });
      }
    }
    if (isOwner() || (role === 'moderator' && kind !== 'direct' && p.role === 'member')) {
      if (p.role !== 'owner' || isOwner()) {
        list.push(muted
          ? { key: 'unmute', text: 'Unmute', run: () => unmute(p) }
          : { key: 'mute', text: 'Mute for an hour', run: () => mute(p) });
        list.push({ key: 'remove', text: 'Remove from room', run: () => removeMember(p) });
      }
    }
    return list;
  }

  function renderPeople() {
    const focused = document.activeElement;
    const hadFocus = Boolean(focused) && peopleEl.contains(focused);
    // Mute and Unmute take each other's place: the keyboard follows.
    const SWAP = { mute: 'unmute', unmute: 'mute' };
    const focusKey = hadFocus ? SWAP[focused.dataset.key] || focused.dataset.key : undefined;
    const focusUser = hadFocus ? focused.dataset.user : undefined;
    const open = new Set([...peopleEl.querySelectorAll('details[open]')].map((d) => d.dataset.user));
    peopleEl.replaceChildren();
    const sorted = [...people].sort((a, b) => (ROLE_RANK[a.role] ?? 3) - (ROLE_RANK[b.role] ?? 3) || String(a.name).localeCompare(String(b.name)));
    let refocus = null;
    for (const p of sorted) {
      const li = document.createElement('li');
      li.className = 'person';
      li.dataset.user = p.id;
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = p.id === me ? `${p.name} (you)` : p.name;
      const badge = document.createElement('span');
      badge.className = 'person-role';
      badge.textContent = p.role || 'member';
      li.append(name, ' ', badge);
      const until = mutedUntil.get(p.id) || 0;
      if (until > Date.now()) {
        const m = document.createElement('span');
        m.className = 'person-muted';
        m.textContent = `muted until ${timeOf(until)}`;
        li.append(' ', m);
      }
      const actions = actionsFor(p);
      if (actions.length > 0) {
        const details = document.createElement('details');
        details.className = 'manage';
        details.dataset.user = p.id;
        if (open.has(p.id)) details.open = true;
        const summary = document.createElement('summary');
        summary.dataset.key = 'manage';
        summary.dataset.user = p.id;
        summary.append('Manage');
        const who = document.createElement('span');
        who.className = 'visually-hidden';
        who.textContent = ` ${p.name}`;
        summary.append(who);
        details.append(summary);
        const box = document.createElement('div');
        box.className = 'manage-actions';
        for (const a of actions) {
          const b = document.createElement('button');
          b.type = 'button';
          b.className = `button button-quiet ${a.key}`;
          b.dataset.key = a.key;
          b.dataset.user = p.id;
          b.textContent = a.text;
          b.setAttribute('aria-label', `${a.text}: ${p.name}`);
          b.addEventListener('click', () => a.run());
          box.append(b);
          if (focusUser === p.id && focusKey === a.key) refocus = b;
        }
        details.append(box);
        li.append(details);
        if (focusUser === p.id && !refocus) refocus = summary;
      }
      peopleEl.append(li);
    }
    peopleCountEl.textContent = `(${people.length})`;
    peoplePanel.hidden = ended || (people.length === 0 && !canModerate());
    // Keep the keyboard where it was: the same button, else that person's menu, else the list.
    if (refocus) refocus.focus();
    else if (hadFocus) $('people-heading').focus();
  }

  async function loadDetails() {
    if (ended) return;
    if (loadingDetails) return loadingDetails;
    loadingDetails = (async () => {
      try {
        const d = await api('GET', roomPath(), undefined, { redirectOn401: false });
        clearTimeout(lostTimer);
        lostTimer = null;
        applyDetails(d);
      } catch (e) {
        if (e.status === 404 || e.status === 403) lostAccessSoon();
      } finally {
        loadingDetails = null;
      }
    })();
    return loadingDetails;
  }

  function scheduleDetails() {
    clearTimeout(detailsTimer);
    if (ended || document.hidden) return;
    detailsTimer = setTimeout(async () => {
      await loadDetails();
      scheduleDetails();
    }, DETAILS_EVERY_MS);
  }

  // The room is gone or closed to us: say so, stop the connection and every retry.
  function endRoom(text) {
    if (ended && statusEl.dataset.state === 'ended') return;
    ended = true;
    clearTimeout(retryTimer);
    clearTimeout(refreshTimer);
    clearTimeout(detailsTimer);
    clearTimeout(lostTimer);
    if (editing) stopEdit();
    if (socket) socket.disconnect();
    setStatus(text, 'ended');
    typers.clear();
    renderTyping();
    members.clear();
    renderMembers();
    backLink.hidden = false;
    deleteConfirm.hidden = true;
    renderRoomState();
  }

  function lostAccessSoon() {
    if (ended || lostTimer) return;
    lostTimer = setTimeout(() => {
      lostTimer = null;
      endRoom(`${roomName} is no longer open to you: you were removed from it, or it was deleted.`);
    }, LOST_GRACE_MS);
  }

  async function act(promise, done) {
    peopleError.textContent = '';
    try {
      await promise;
      if (done) say(done);
    } catch (e) {
      peopleError.textContent = explain(e);
    }
    await loadDetails();
  }

  function setRole(p, r) {
    const text = r === 'owner' ? `${p.name} is now an owner.` : r === 'moderator' ? `${p.name} is now a moderator.` : `${p.name} is now a member.`;
    return act(api('PUT', roomPath(`/members/${encodeURIComponent(p.id)}`), { role: r }), text);
  }

  function removeMember(p) {
    return act(api('DELETE', roomPath(`/members/${encodeURIComponent(p.id)}`)), `${p.name} was removed from the room.`);
  }

  async function mute(p) {
    const until = Date.now() + MUTE_MS;
    peopleError.textContent = '';
    try {
      await api('PUT', roomPath(`/mutes/${encodeURIComponent(p.id)}`), { until });
      mutedUntil.set(p.id, until);
      say(`${p.name} is muted until ${timeOf(until)}.`);
    } catch (e) {
      peopleError.textContent = explain(e);
    }
    renderPeople();
  }

  async function unmute(p) {
    peopleError.textContent = '';
    try {
      await api('DELETE', roomPath(`/mutes/${encodeURIComponent(p.id)}`));
      mutedUntil.delete(p.id);
      say(`${p.name} may post again.`);
    } catch (e) {
      peopleError.textContent = explain(e);
    }
    renderPeople();
  }

  // Adding a member: people found by the start of their name, each a button.
  let addTimer = null;
  let addSeq = 0;

  async function searchPeople() {
    const seq = ++addSeq;
    const q = addSearch.value.trim();
    if (q === '') {
      addResults.replaceChildren();
      addFound.textContent = '';
      return;
    }
    try {
      const data = await api('GET', `/api/users?q=${encodeURIComponent(q)}`);
      if (seq !== addSeq) return;
      const inRoom = new Set(people.map((p) => p.id));
      const found = ((data && data.users) || []).filter((u) => u && typeof u.id === 'string' && !inRoom.has(u.id));
      addResults.replaceChildren(...found.map((u) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'button button-quiet pick';
        b.dataset.user = u.id;
        b.textContent = u.name;
        b.setAttribute('aria-label', `Add ${u.name} to the room`);
        b.addEventListener('click', () => addMember(u));
        li.append(b);
        return li;
      }));
      addFound.textContent = found.length === 0 ? `Nobody to add named “${q}”.` : `${found.length} ${found.length === 1 ? 'person' : 'people'} found.`;
    } catch (e) {
      if (seq === addSeq) peopleError.textContent = explain(e);
    }
  }

  async function addMember(u) {
    peopleError.textContent = '';
    try {
      await api('PUT', roomPath(`/members/${encodeURIComponent(u.id)}`), {});
      say(`${u.name} was added to the room.`);
      addSearch.value = '';
      addResults.replaceChildren();
      addFound.textContent = '';
    } catch (e) {
      peopleError.textContent = explain(e, { invalid: `${u.name} cannot be added (they must have signed in before).`, forbidden: `You may not add ${u.name} to this room.` });
    }
    addSearch.focus();
    await loadDetails();
  }

  addSearch.addEventListener('input', () => {
    clearTimeout(addTimer);
    addTimer = setTimeout(searchPeople, 250);
  });
  addForm.addEventListener('submit', (e) => {
    // Enter picks the only match, or else searches at once.
    e.preventDefault();
    const buttons = [...addResults.querySelectorAll('button.pick')];
    if (buttons.length === 1) buttons[0].click();
    else {
      clearTimeout(addTimer);
      searchPeople();
    }
  });

  // Settings (owners).
  for (const field of [settingsName, settingsTopic, settingsAnnounce]) {
    field.addEventListener('input', () => { settingsDirty = true; });
    field.addEventListener('change', () => { settingsDirty = true; });
  }

  settingsForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    settingsError.textContent = '';
    const change = {};
    const name = settingsName.value.trim();
    const newTopic = settingsTopic.value.trim();
    const newPosting = settingsAnnounce.checked ? 'moderators' : 'everyone';
    if (name === '') {
      settingsError.textContent = 'The room needs a name.';
      settingsName.focus();
      return;
    }
    if (name !== roomName) change.name = name;
    if (newTopic !== topic) change.topic = newTopic;
    if (newPosting !== posting) change.posting = newPosting;
    if (Object.keys(change).length === 0) {
      settingsDirty = false;
      say('Nothing to change.');
      return;
    }
    settingsSave.disabled = true;
    try {
      await api('PATCH', roomPath(), change);
      settingsDirty = false;
      say('Settings saved.');
      await loadDetails();
    } catch (err) {
      settingsError.textContent = explain(err, { invalid: 'Check the name (1 to 80 characters) and the topic (at most 250).' });
    } finally {
      settingsSave.disabled = false;
    }
  });

  deleteButton.addEventListener('click', () => {
    deleteError.textContent = '';
    deleteQuestion.textContent = `Delete ${roomName} and all its messages for everyone?`;
    deleteConfirm.hidden = false;
    deleteQuestion.focus();
  });
  deleteNo.addEventListener('click', () => {
    deleteConfirm.hidden = true;
    deleteButton.focus();
  });
  deleteYes.addEventListener('click', async () => {
    deleteError.textContent = '';
    deleteYes.disabled = true;
    try {
      await api('DELETE', roomPath());
      endRoom('This room was deleted.');
      window.location.assign('/dashboard');
    } catch (err) {
      deleteYes.disabled = false;
      deleteError.textContent = explain(err);
    }
  });

  joinButton.addEventListener('click', async () => {
    joinButton.disabled = true;
    try {
      await api('POST', roomPath('/join'), {});
      say(`You joined ${roomName}.`);
      await loadDetails();
      leaveButton.focus();
    } catch (err) {
      say(explain(err));
    } finally {
      joinButton.disabled = false;
    }
  });

  leaveButton.addEventListener('click', async () => {
    leaveButton.disabled = true;
    leaving = true;
    try {
      await api('POST', roomPath('/leave'), {});
      endRoom(`You left ${roomName}.`);
      window.location.assign('/dashboard');
    } catch (err) {
      leaving = false;
      leaveButton.disabled = false;
      say(explain(err, { conflict: 'You are the last owner: make someone else an owner before you leave.' }));
    }
  });

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
        fetchToken().then((b) => give(b.token), (e) => {
          // The room is gone or closed to us: no token will come, so stop trying.
          if (e && (e.status === 404 || e.status === 403)) {
            endRoom(`${roomName} is no longer open to you: you were removed from it, or it was deleted.`);
            return;
          }
          give('');
        });
      },
    });

    socket.on('connect', () => {
      if (ended) {
        socket.disconnect();
        return;
      }
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
      loadDetails();
    });

    socket.on('user entered', (u) => {
      if (!u || members.has(u.id)) return;
      members.set(u.id, u.name);
      renderMembers();
      notice(`${u.name} entered the room.`);
      // Someone not yet listed among the members may have just been added or joined.
      if (!people.some((p) => p.id === u.id)) loadDetails();
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
      if (reason === 'removed') {
        endRoom(leaving ? `You left ${roomName}.` : `You were removed from ${roomName}.`);
      } else if (reason === 'room_closed') {
        endRoom('This room was deleted.');
      } else if (reason === 'token_revoked') {
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
      if (ended) return;
      const code = err && err.message;
      if (code === 'token_revoked') {
        ended = true;
        setStatus('You were signed out. Log in again to keep chatting.', 'ended');
        // A token refused because this user lost the room, not their session: say that instead.
        api('GET', roomPath(), undefined, { redirectOn401: false }).catch((e) => {
          if (e.status === 404 || e.status === 403) {
            ended = false;
            endRoom(`${roomName} is no longer open to you: you were removed from it, or it was deleted.`);
          }
        });
        return;
      }
      if (code === 'room_unknown') {
        endRoom('This room was deleted, or it does not exist.');
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
        sendError.textContent = SEND_ERRORS[ack && ack.error] || SEND_ERRORS.invalid;
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
    if (document.hidden) {
      clearTimeout(detailsTimer);
      return;
    }
    hiddenCount = 0;
    updateTitle();
    markRead();
    if (!ended) loadDetails().then(scheduleDetails);
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
  loadDetails().then(scheduleDetails);
  start();
})();
