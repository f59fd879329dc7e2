import { BadRequestTargetError } from './errors.js';

// The path and query of an incoming request, from the HTTP/1.1 request-target or the HTTP/2 `:path`,
// for every server of the project (backend, admin API, restarter control). Total: any string gives
// a URL or a BadRequestTargetError, never an exception — `new URL(target, base)` throws on targets a
// client fully controls (`//%zz/echo`, `//[/x`), and one throw in a request handler is a process exit.

/** The origin every parsed target is placed under; only pathname, search and searchParams mean anything. */
const ORIGIN = 'http://request-target.invalid';

// RFC 9112 §3.2.1 origin-form = absolute-path [ "?" query ], with RFC 3986's pchar. Checked before
// parsing because the WHATWG parser repairs what it does not refuse ("%zz" stays, "[" passes), and a
// malformed target is the client's error (400), not an unknown route (404).
const PCHAR = String.raw`[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2}`;
const ABSOLUTE_PATH = new RegExp(String.raw`^(?:/(?:${PCHAR})*)+$`);
const QUERY = new RegExp(String.raw`^(?:${PCHAR}|[/?])*$`);

export type RequestTarget = { ok: true; url: URL } | { ok: false; error: BadRequestTargetError };

export function parseRequestTarget(target: string | undefined): RequestTarget {
  const raw = target ?? '/';
  const fail = (reason: string): RequestTarget => ({ ok: false, error: new BadRequestTargetError(raw, reason) });
  try {
    if (raw.startsWith('/')) {
      const q = raw.indexOf('?');
      const path = q < 0 ? raw : raw.slice(0, q);
      if (!ABSOLUTE_PATH.test(path)) return fail('the path has a character or %-escape RFC 3986 does not allow');
      if (q >= 0 && !QUERY.test(raw.slice(q + 1))) return fail('the query has a character or %-escape RFC 3986 does not allow');
      // Appended to a fixed origin, not resolved against a base: resolved, "//x/echo" is a
      // scheme-relative reference whose first segment becomes a host, and the request reaches /echo.
      return { ok: true, url: new URL(ORIGIN + raw) };
    }
    // asterisk-form (OPTIONS *): no route has it, so it ends as a 404 like any unknown path.
    if (raw === '*') return { ok: true, url: new URL(`${ORIGIN}/*`) };
    // absolute-form, which HTTP/1.1 servers must accept (RFC 9112 §3.2.2): its path and query only.
    if (/^https?:\/\//i.test(raw)) {
      const absolute = new URL(raw);
      return parseRequestTarget(absolute.pathname + absolute.search);
    }
    return fail('not a path (origin-form), "*" or an absolute http(s) URL');
  } catch (err) {
    return fail((err as Error).message);
  }
}
