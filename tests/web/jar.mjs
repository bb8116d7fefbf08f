// A small cookie jar over fetch with manual redirects, enough to act as one browser in tests.

/** A browser-like client: keeps cookies per host (ignoring Path), never follows redirects itself. */
export class CookieJar {
  constructor() {
    this.cookies = new Map(); // host -> Map(name -> value)
  }

  /** The cookies held for `url`'s host, as a Map. */
  for(url) {
    const host = new URL(url).host;
    if (!this.cookies.has(host)) this.cookies.set(host, new Map());
    return this.cookies.get(host);
  }

  /** fetch with this jar's cookies and redirect: 'manual'; stores Set-Cookie from the answer. */
  async fetch(url, init = {}) {
    const jar = this.for(url);
    const headers = new Headers(init.headers ?? {});
    if (jar.size > 0) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=(0|-)/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  }
}
