// The dashboard keeps each room's member and unread counts live by polling
// GET /api/rooms: every few seconds while the tab is visible, backing off
// (up to a minute) while the server does not answer, at once when the tab
// comes back into view. Built with textContent only.
(() => {
  'use strict';
  const EVERY_MS = 3000;
  const MAX_BACKOFF_MS = 60000;
  let delay = EVERY_MS;
  let timer = null;

  const people = (n) => `${n} ${n === 1 ? 'person' : 'people'} here`;

  function render(rooms) {
    for (const { room, members, unread } of rooms) {
      for (const el of document.querySelectorAll('.member-count')) {
        if (el.dataset.room === room) el.textContent = people(members);
      }
      for (const el of document.querySelectorAll('.unread-count')) {
        if (el.dataset.room !== room) continue;
        el.dataset.unread = String(unread);
        el.textContent = unread > 0 ? `${unread} unread` : '';
      }
    }
  }

  async function poll() {
    timer = null;
    try {
      const res = await fetch('/api/rooms', { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (res.status === 401) return; // signed out: nothing more to show
      if (!res.ok) throw new Error(`status ${res.status}`);
      render((await res.json()).rooms);
      delay = EVERY_MS;
    } catch {
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
    schedule();
  }

  function schedule() {
    if (timer === null && !document.hidden) timer = setTimeout(poll, delay);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (timer === null) {
      clearTimeout(timer);
      timer = setTimeout(poll, 0);
    }
  });
  schedule();
})();
