// The dashboard: the signed-in user's rooms with their member and unread counts, kept live by
// polling GET /api/rooms (every few seconds while the tab is visible, backing off up to a minute
// while the server does not answer, at once when the tab comes back into view), rooms that
// appear or go added and removed; a form for a new room; the directory of public rooms; and a
// new conversation with people picked by name. Built with DOM APIs and textContent only.
(() => {
  'use strict';
  const EVERY_MS = 3000;
  const MAX_BACKOFF_MS = 60000;
  const SEARCH_DELAY_MS = 250;
  const MAX_OTHERS = 7;
  let delay = EVERY_MS;
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const listEl = $('room-list');
  const roomsStatus = $('rooms-status');

  const MESSAGES = {
    invalid: 'That was not accepted. Check what you typed.',
    forbidden: 'You are not allowed to do that.',
    not_found: 'That room is gone, or you no longer have access to it.',
    conflict: 'That conflicts with the room as it is now. Reload and try again.',
    rate_limited: 'Too many requests. Wait a moment and try again.',
    unavailable: 'The chat is having trouble. Try again in a moment.',
    network: 'No answer from the server. Check your connection and try again.',
  };
  const explain = (e, overrides = {}) => overrides[e.code] || MESSAGES[e.code] || MESSAGES.unavailable;

  class ApiFailure extends Error {
    constructor(code, status) {
      super(code);
      this.code = code;
      this.status = status;
    }
  }

  // A same-origin JSON call with the session cookie. Resolves with the parsed body; rejects with
  // an ApiFailure carrying the contract's error code. A 401 sends the browser to the sign-in.
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

  const roomUrl = (room) => `/chat/${encodeURIComponent(room)}`;
  const people = (n) => `${n} ${n === 1 ? 'person' : 'people'} here`;
  const kindLabel = (kind) => (kind === 'private' ? 'private' : kind === 'direct' ? 'direct message' : '');
  const roleLabel = (role) => (role && role !== 'member' ? role : '');

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- your rooms ----------------------------------------------------------

  const directNames = new Map(); // direct room id -> the other people's names, when the list had none
  const directAsked = new Set();

  function displayName(r) {
    if (r.kind === 'direct' && !r.name) return directNames.get(r.room) || 'Direct message';
    return r.name || r.room;
  }

  // A direct room listed without a name: its people say who it is with.
  async function nameDirect(room) {
    if (directAsked.has(room)) return;
    directAsked.add(room);
    try {
      const details = await api('GET', `/api/rooms/${encodeURIComponent(room)}`, undefined, { redirectOn401: false });
      // The page knows the signed-in user by name only (the header says it).
      const myName = document.querySelector('.account .who strong')?.textContent || '';
      const names = (details.people || []).map((p) => p.name).filter((n) => n !== myName);
      if (names.length > 0) {
        directNames.set(room, names.join(', '));
        const li = itemOf(room);
        if (li) li.querySelector('.room-link').textContent = directNames.get(room);
      }
    } catch {
      directAsked.delete(room);
    }
  }

  function itemOf(room) {
    for (const li of listEl.children) if (li.dataset.room === room) return li;
    return null;
  }

  function newItem(room) {
    const li = el('li', 'room-item');
    li.dataset.room = room;
    const main = el('div', 'room-main');
    const link = el('a', 'room-link');
    link.href = roomUrl(room);
    main.append(link, ' ', el('span', 'room-kind'), ' ', el('span', 'room-role'), el('p', 'room-topic'));
    const counts = el('div', 'room-counts');
    const members = el('span', 'member-count');
    members.dataset.room = room;
    const unread = el('span', 'unread-count');
    unread.dataset.room = room;
    counts.append(members, ' ', unread);
    li.append(main, counts);
    return li;
  }

  function fill(li, r) {
    li.dataset.kind = r.kind || 'public';
    li.dataset.role = r.role || '';
    roles.set(r.room, r.role || '');
    const set = (selector, text) => {
      const e = li.querySelector(selector);
      if (e && e.textContent !== text) e.textContent = text;
    };
    set('.room-link', displayName(r));
    set('.room-kind', kindLabel(r.kind));
    set('.room-role', roleLabel(r.role));
    set('.room-topic', r.topic || '');
    set('.member-count', people(Number(r.members) || 0));
    const unread = Number(r.unread) || 0;
    const u = li.querySelector('.unread-count');
    u.dataset.unread = String(unread);
    set('.unread-count', unread > 0 ? `${unread} unread` : '');
    if (r.kind === 'direct' && !r.name) nameDirect(r.room);
  }

  let known = null; // room ids of the last list, to announce what changed
  const roles = new Map(); // room id -> your role there ('' where you have none), from the last list

  function render(rooms) {
    const ids = new Set(rooms.map((r) => r.room));
    const added = [];
    const gone = [];
    for (const li of [...listEl.children]) {
      if (!ids.has(li.dataset.room)) {
        gone.push(li.querySelector('.room-link').textContent);
        roles.delete(li.dataset.room);
        li.remove();
      }
    }
    let prev = null;
    for (const r of rooms) {
      if (!r || typeof r.room !== 'string') continue;
      let li = itemOf(r.room);
      if (!li) {
        li = newItem(r.room);
        if (known && !known.has(r.room)) added.push(r);
      }
      fill(li, r);
      // Keep the server's order without moving focused items needlessly.
      const want = prev ? prev.nextElementSibling : listEl.firstElementChild;
      if (want !== li) {
        if (prev) prev.after(li);
        else listEl.prepend(li);
      }
      prev = li;
    }
    if (known) {
      const parts = [];
      for (const r of added) parts.push(`New in your rooms: ${displayName(r)}.`);
      for (const name of gone) parts.push(`No longer in your rooms: ${name}.`);
      if (parts.length > 0) roomsStatus.textContent = parts.join(' ');
    }
    known = ids;
    markJoined();
  }

  async function poll() {
    timer = null;
    try {
      const res = await fetch('/api/rooms', { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (res.status === 401) return; // signed out: nothing more to show
      if (!res.ok) throw new Error(`status ${res.status}`);
      render((await res.json()).rooms || []);
      delay = EVERY_MS;
    } catch {
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
    schedule();
  }

  function schedule() {
    if (timer === null && !document.hidden) timer = setTimeout(poll, delay);
  }

  function pollNow() {
    clearTimeout(timer);
    timer = null;
    delay = EVERY_MS;
    poll();
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (timer === null) {
      timer = setTimeout(poll, 0);
    }
  });

  // The server-rendered list: remember what it holds so later changes are announced.
  known = new Set([...listEl.children].map((li) => li.dataset.room));
  for (const li of listEl.children) {
    roles.set(li.dataset.room, li.dataset.role || '');
    if (li.dataset.kind === 'direct' && !li.querySelector('.room-link').textContent.trim()) nameDirect(li.dataset.room);
  }

  // --- a new room ----------------------------------------------------------

  const createForm = $('create-form');
  const createError = $('create-error');
  const createSubmit = $('create-submit');

  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    createError.textContent = '';
    const name = $('create-name').value.trim();
    const topic = $('create-topic').value.trim();
    const kind = createForm.querySelector('input[name=kind]:checked')?.value || 'public';
    const groups = $('create-groups').value.split(',').map((g) => g.trim()).filter((g) => g !== '');
    if (name === '') {
      createError.textContent = 'Give the room a name.';
      $('create-name').focus();
      return;
    }
    const body = { name, kind };
    if (topic !== '') body.topic = topic;
    if (groups.length > 0) body.groups = groups;
    createSubmit.disabled = true;
    try {
      const made = await api('POST', '/api/rooms', body);
      window.location.assign(roomUrl(made.room));
    } catch (err) {
      createSubmit.disabled = false;
      createError.textContent = explain(err, {
        invalid: 'Check the name (1 to 80 characters), the topic (at most 250) and the groups.',
        forbidden: 'You can only limit a room to groups you are in.',
      });
    }
  });

  // --- the directory of public rooms --------------------------------------

  const directorySearch = $('directory-search');
  const directoryList = $('directory-list');
  const directoryStatus = $('directory-status');
  const directoryError = $('directory-error');
  let directoryTimer = null;
  let directorySeq = 0;

  // A directory entry offers Join, or Open once the room is in your list with a role.
  function markJoined() {
    for (const li of directoryList.children) {
      const joined = li.dataset.joined === 'true' || Boolean(roles.get(li.dataset.room));
      li.querySelector('button.join').hidden = joined;
      li.querySelector('a.open').hidden = !joined;
    }
  }

  function directoryItem(r) {
    const li = el('li', 'room-item');
    li.dataset.room = r.room;
    const main = el('div', 'room-main');
    main.append(el('span', 'room-name', r.name || r.room), el('p', 'room-topic', r.topic || ''));
    const side = el('div', 'room-counts');
    side.append(el('span', 'member-count', people(Number(r.members) || 0)), ' ');
    const join = el('button', 'button join', 'Join');
    join.type = 'button';
    const label = `Join ${r.name || r.room}`;
    join.setAttribute('aria-label', label);
    const open = el('a', 'button button-quiet open', 'Open');
    open.href = roomUrl(r.room);
    open.setAttribute('aria-label', `Open ${r.name || r.room}`);
    open.hidden = true;
    join.addEventListener('click', async () => {
      directoryError.textContent = '';
      join.disabled = true;
      try {
        await api('POST', `/api/rooms/${encodeURIComponent(r.room)}/join`, {});
        li.dataset.joined = 'true';
        join.hidden = true;
        open.hidden = false;
        open.focus();
        directoryStatus.textContent = `You joined ${r.name || r.room}.`;
        pollNow();
      } catch (err) {
        join.disabled = false;
        directoryError.textContent = explain(err, { forbidden: 'You may not join that room.' });
      }
    });
    side.append(join, open);
    li.append(main, side);
    return li;
  }

  async function searchDirectory() {
    const seq = ++directorySeq;
    const q = directorySearch.value.trim();
    directoryError.textContent = '';
    try {
      const data = await api('GET', `/api/rooms/directory?q=${encodeURIComponent(q)}`);
      if (seq !== directorySeq) return;
      const rooms = (data && data.rooms) || [];
      directoryList.replaceChildren(...rooms.map(directoryItem));
      markJoined();
      if (rooms.length === 0) directoryStatus.textContent = q ? `No public room matches “${q}”.` : 'No public rooms to join yet.';
      else directoryStatus.textContent = `${rooms.length} public ${rooms.length === 1 ? 'room' : 'rooms'}${q ? ` matching “${q}”` : ''}.`;
    } catch (err) {
      if (seq !== directorySeq) return;
      directoryError.textContent = explain(err);
    }
  }

  directorySearch.addEventListener('input', () => {
    clearTimeout(directoryTimer);
    directoryTimer = setTimeout(searchDirectory, SEARCH_DELAY_MS);
  });
  $('directory-form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(directoryTimer);
    searchDirectory();
  });

  // --- a new conversation ---------------------------------------------------

  const directSearch = $('direct-search');
  const directResults = $('direct-results');
  const directFound = $('direct-found');
  const directPicked = $('direct-picked');
  const directNone = $('direct-none');
  const directStart = $('direct-start');
  const directError = $('direct-error');
  const picked = new Map(); // id -> name
  let peopleTimer = null;
  let peopleSeq = 0;

  function renderPicked() {
    directPicked.replaceChildren();
    for (const [id, name] of picked) {
      const li = el('li', 'picked-person');
      li.append(el('span', 'picked-name', name), ' ');
      const remove = el('button', 'button button-quiet', 'Remove');
      remove.type = 'button';
      remove.setAttribute('aria-label', `Remove ${name}`);
      remove.addEventListener('click', () => {
        picked.delete(id);
        renderPicked();
        directFound.textContent = `${name} removed.`;
        directSearch.focus();
      });
      li.append(remove);
      directPicked.append(li);
    }
    directNone.hidden = picked.size > 0;
    directStart.disabled = picked.size === 0;
  }

  async function searchPeople() {
    const seq = ++peopleSeq;
    const q = directSearch.value.trim();
    if (q === '') {
      directResults.replaceChildren();
      directFound.textContent = '';
      return;
    }
    try {
      const data = await api('GET', `/api/users?q=${encodeURIComponent(q)}`);
      if (seq !== peopleSeq) return;
      const users = ((data && data.users) || []).filter((u) => u && typeof u.id === 'string');
      directResults.replaceChildren(...users.map((u) => {
        const li = el('li');
        const add = el('button', 'button button-quiet pick', u.name);
        add.type = 'button';
        add.dataset.user = u.id;
        add.setAttribute('aria-label', `Add ${u.name}`);
        add.disabled = picked.has(u.id);
        add.addEventListener('click', () => {
          directError.textContent = '';
          if (picked.size >= MAX_OTHERS) {
            directError.textContent = `A conversation has at most ${MAX_OTHERS} other people.`;
            return;
          }
          picked.set(u.id, u.name);
          renderPicked();
          directResults.replaceChildren();
          directSearch.value = '';
          directFound.textContent = `${u.name} added.`;
          directSearch.focus();
        });
        li.append(add);
        return li;
      }));
      directFound.textContent = users.length === 0 ? `Nobody found named “${q}”.` : `${users.length} ${users.length === 1 ? 'person' : 'people'} found.`;
    } catch (err) {
      if (seq !== peopleSeq) return;
      directError.textContent = explain(err);
    }
  }

  directSearch.addEventListener('input', () => {
    clearTimeout(peopleTimer);
    peopleTimer = setTimeout(searchPeople, SEARCH_DELAY_MS);
  });
  directSearch.addEventListener('keydown', (e) => {
    // Enter in the search box picks the only match, or else searches at once.
    if (e.key !== 'Enter') return;
    e.preventDefault();
    const buttons = [...directResults.querySelectorAll('button.pick:not(:disabled)')];
    if (buttons.length === 1) buttons[0].click();
    else {
      clearTimeout(peopleTimer);
      searchPeople();
    }
  });

  $('direct-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    directError.textContent = '';
    if (picked.size === 0) {
      directError.textContent = 'Pick someone to write to first.';
      return;
    }
    directStart.disabled = true;
    try {
      const made = await api('POST', '/api/rooms/direct', { users: [...picked.keys()] });
      window.location.assign(roomUrl(made.room));
    } catch (err) {
      directStart.disabled = false;
      directError.textContent = explain(err, { invalid: 'Pick 1 to 7 people other than yourself who have signed in before.' });
    }
  });

  renderPicked();
  searchDirectory();
  schedule();
})();
