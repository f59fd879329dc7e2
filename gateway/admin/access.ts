import { timingSafeEqual } from 'node:crypto';
import type { AdminHttpServer } from './http-server.js';
import { HttpError } from './http-server.js';

// Who may use the admin server, as one onRequest hook ahead of every route (pages included) and of
// the 404: the admin token, by `Authorization: Bearer <token>` or by the `gw_admin` cookie that a
// visit to any page with `?token=<token>` sets (for the dashboard); and writes only from the admin's
// own pages or from clients that send no Origin. GET /healthz alone is open.

const COOKIE = 'gw_admin';

export interface AccessOptions {
  token: string;
  /** Where a user finds the token (this stack's token file, or ADMIN_TOKEN), named in the 401 and the login page. */
  tokenFrom?: string;
  /** Paths anyone may GET (health checks, and the stylesheet the login page uses). */
  openPaths: ReadonlySet<string>;
  /** The origins a browser shows for this server's own pages (known once it listens). */
  ownOrigins: () => ReadonlySet<string>;
}

export function guardAdminAccess(app: AdminHttpServer, options: AccessOptions): void {
  const expected = Buffer.from(options.token);
  const tokenMatches = (candidate: string) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const authorized = (headers: { authorization?: string; cookie?: string }) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '')?.[1];
    const cookie = new RegExp(`(?:^|;\\s*)${COOKIE}=([^;]+)`).exec(headers.cookie ?? '')?.[1];
    return [bearer, cookie].some((t) => t !== undefined && tokenMatches(t));
  };

  app.addHook('onRequest', async (request, reply) => {
    const url = new URL(request.target);
    const read = request.method === 'GET' || request.method === 'HEAD';
    if (read && options.openPaths.has(url.pathname)) return;
    const offered = url.searchParams.get('token');
    if (offered !== null && request.method === 'GET' && tokenMatches(offered)) {
      // Trade the token in the URL for a cookie, and drop it from the address bar.
      url.searchParams.delete('token');
      reply.header('set-cookie', `${COOKIE}=${options.token}; HttpOnly; SameSite=Strict; Path=/`);
      return reply.redirect(url.pathname + url.search, 303);
    }
    if (!authorized(request.headers)) {
      reply.header('www-authenticate', 'Bearer realm="gateway admin"');
      // A person at a browser gets a form to paste the token into; API clients keep the JSON 401.
      if (read && /\btext\/html\b/.test(request.headers.accept ?? '')) {
        return reply.code(401).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(loginPage(url.pathname, offered !== null, options.tokenFrom));
      }
      throw new HttpError(401, 'GW_ERR_UNAUTHORIZED', `admin API needs the admin token (Authorization: Bearer <token>); see ${options.tokenFrom ?? 'ADMIN_TOKEN'}`);
    }
    // The admin cookie alone is no proof of intent: SameSite does not tell ports apart on 127.0.0.1,
    // so a page on another port of this machine could otherwise write with it.
    const origin = request.headers.origin;
    const own = options.ownOrigins();
    if (!read && origin !== undefined && !own.has(origin.toLowerCase())) {
      throw new HttpError(403, 'GW_ERR_ORIGIN', `refused ${request.method} from Origin ${origin}: the admin API takes writes from its own pages (${[...own][0]}) or from clients that send no Origin`);
    }
  });
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The login form: a GET of the same page with ?token=, which the hook above trades for the cookie. */
function loginPage(path: string, wrongToken: boolean, tokenFrom: string | undefined): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — h2 WebSocket gateway</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="login" data-testid="login">
<h1>h2 WebSocket gateway</h1>
<p>The admin pages need the admin token. ${
    tokenFrom === undefined || tokenFrom === 'ADMIN_TOKEN'
      ? 'It is the <code>ADMIN_TOKEN</code> the gateway was started with'
      : `It is in <code>${escapeHtml(tokenFrom)}</code>`
  }, and in the <code>open:</code> link <code>npm start</code> printed.</p>
${wrongToken ? '<p class="error" data-testid="login-error">That token is not this gateway\'s.</p>' : ''}
<form method="get" action="${escapeHtml(path)}">
<label>admin token <input name="token" type="password" autocomplete="current-password" size="40" required autofocus data-testid="login-token"></label>
<button type="submit" class="primary" data-testid="login-submit">Sign in</button>
</form></main></body></html>
`;
}
