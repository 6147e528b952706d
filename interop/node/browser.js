// A minimal user agent for the sign-in pages: plain HTTP with a cookie jar,
// redirects followed by hand, and the simple HTML forms of the login,
// consent and logout pages read with regular expressions.

const MAX_HOPS = 20;

/** Decodes the HTML character references html/template writes. */
export function htmlDecode(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/g, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
  });
}

function attrs(tag) {
  const out = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the tag name.
  const body = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(body)) !== null) {
    out[m[1].toLowerCase()] = htmlDecode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * Returns the forms of an HTML page: { action, method, fields: [[name, value]],
 * buttons: { name: value } }. Text, hidden and password inputs are fields;
 * submit inputs and buttons are listed apart, since only the one clicked is
 * sent.
 */
export function parseForms(html) {
  const forms = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = formRe.exec(html)) !== null) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const a = attrs(open);
    const form = { action: a.action ?? '', method: (a.method || 'get').toLowerCase(), fields: [], buttons: {} };
    const inner = m[1];
    for (const [tag] of inner.matchAll(/<input\b[^>]*>/gi)) {
      const ia = attrs(tag);
      if (!ia.name) continue;
      const type = (ia.type || 'text').toLowerCase();
      if (type === 'submit' || type === 'image' || type === 'button') {
        form.buttons[ia.name] = ia.value ?? '';
      } else if ((type === 'checkbox' || type === 'radio') && !('checked' in ia)) {
        continue;
      } else {
        form.fields.push([ia.name, ia.value ?? '']);
      }
    }
    for (const [tag] of inner.matchAll(/<button\b[^>]*>/gi)) {
      const ba = attrs(tag);
      if (ba.name) form.buttons[ba.name] = ba.value ?? '';
    }
    forms.push(form);
  }
  return forms;
}

/** An error carrying the last response, to show what the server did. */
export class BrowserError extends Error {
  constructor(msg, res, body) {
    super(`${msg}\n  -> ${res ? `${res.status} ${res.url || ''}` : ''}\n${(body || '').slice(0, 1500)}`);
    this.status = res?.status;
    this.body = body;
  }
}

export class Browser {
  constructor() {
    this.cookies = new Map();
    this.trail = [];
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(res) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrsList] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrsList.some((a) => {
        const [k, v] = a.split('=').map((x) => x.trim());
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) < Date.now();
        return false;
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** One request, no redirect followed. */
  async request(url, { method = 'GET', form } = {}) {
    const headers = { Accept: 'text/html' };
    const c = this.cookieHeader();
    if (c) headers.Cookie = c;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(15000) });
    this.store(res);
    const text = await res.text();
    this.trail.push(`${method} ${url} -> ${res.status}${res.headers.get('location') ? ' ' + res.headers.get('location') : ''}`);
    return { res, text, url: new URL(url) };
  }

  /**
   * Follows redirects and fills in the sign-in, consent and logout forms
   * until the browser is sent to a URL starting with `until` (the client's
   * redirect URI). Returns that URL. Throws a BrowserError with the page
   * when the server shows anything else.
   *
   * opts: { username, password, approve (default true), confirmLogout }
   */
  async navigate(start, until, opts = {}) {
    let next = { url: String(start), method: 'GET', form: undefined };
    let loginPosted = false;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const { res, text, url } = await this.request(next.url, next);
      if (res.status >= 300 && res.status < 400) {
        const loc = res.headers.get('location');
        if (!loc) throw new BrowserError('redirect without Location', res, text);
        const target = new URL(loc, url);
        if (target.href.startsWith(until)) return target;
        next = { url: target.href, method: 'GET' };
        continue;
      }
      if (res.status !== 200) {
        throw new BrowserError(`unexpected status ${res.status} (trail: ${this.trail.slice(-6).join(' | ')})`, res, text);
      }
      const forms = parseForms(text);
      const login = forms.find((f) => f.method === 'post' && new URL(f.action, url).pathname === '/login');
      const consent = forms.find((f) => f.method === 'post' && new URL(f.action, url).pathname === '/consent');
      const logout = forms.find((f) => f.method === 'post' && new URL(f.action, url).pathname === '/logout');
      if (login) {
        if (!opts.username) throw new BrowserError('login page shown but no credentials given', res, text);
        if (loginPosted) throw new BrowserError(`sign-in of ${opts.username} refused: the login page came back (trail: ${this.trail.slice(-6).join(' | ')})`, res, text);
        loginPosted = true;
        if (opts.loginSeen) opts.loginSeen();
        const data = login.fields.filter(([k]) => k !== 'username' && k !== 'password');
        data.push(['username', opts.username], ['password', opts.password]);
        next = { url: new URL(login.action, url).href, method: 'POST', form: data };
        continue;
      }
      if (consent) {
        if (!('approve' in consent.buttons)) throw new BrowserError('consent form without an approve button', res, text);
        if (opts.consentSeen) opts.consentSeen();
        const data = [...consent.fields];
        if (opts.approve === false) {
          const deny = Object.keys(consent.buttons).find((b) => b !== 'approve');
          if (deny) data.push([deny, consent.buttons[deny]]);
        } else {
          data.push(['approve', consent.buttons.approve]);
        }
        next = { url: new URL(consent.action, url).href, method: 'POST', form: data };
        continue;
      }
      if (logout && opts.confirmLogout) {
        if (!('logout' in logout.buttons)) throw new BrowserError('logout form without a logout button', res, text);
        next = { url: new URL(logout.action, url).href, method: 'POST', form: [...logout.fields, ['logout', logout.buttons.logout]] };
        continue;
      }
      throw new BrowserError(`page with no form to fill (trail: ${this.trail.slice(-6).join(' | ')})`, res, text);
    }
    throw new Error(`more than ${MAX_HOPS} hops: ${this.trail.slice(-MAX_HOPS).join(' | ')}`);
  }
}
