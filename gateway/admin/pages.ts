import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../../lib/config.js';
import { GatewayError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';
import type { AdminDeps } from './api.js';
import { isLoopbackHost, LoadBusyError, LoadNotLocalError, loadRequestSchema, LoadRunner } from './load.js';
import { withConfiguredPorts, type PortsInText } from './configured-ports.js';
import { escapeHtml, renderMarkdown } from './markdown.js';
import { HttpError, parseBody, readJsonBody } from './http-json.js';

// The page, the dashboard and the explainers, served by the admin API's server through its
// `extraRoutes` hook (so they sit behind the same admin token: visit `/?token=<token>` once and the
// admin API trades it for a cookie). Nothing is fetched from the network: the HTML, CSS and JS are
// the files in web/, the explainers are docs/explain/*.md rendered here, their diagrams are SVG files
// inlined into the page.
//
//   GET  /                    chat page: the browser's own WebSocket through the front
//   GET  /dashboard           live view of endpoints, front, generations, events; buttons
//   GET  /assets/<file>       web/<file> (.js .css .svg)
//   GET  /explain[/<name>]    docs/explain/<name>.md as HTML (index: docs/explain/README.md)
//   GET  /explain/img/<f>.svg a diagram on its own
//   GET  /bench               newest bench/results/*.html: {file, modified, charts: [<figure> SVG]} or {file: null, hint}
//   GET  /bench/latest        that report itself (self-contained HTML with inline SVG charts)
//   GET  /load                the load button's status
//   POST /load                {sessions ≤ 2000, seconds ≤ 60, transport?: "h2"|"h1"|"mixed"} → 202
//   DELETE /load              stop the running load
// Anything else returns false and falls through to the admin API's own routes.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface WebOptions {
  /** The plain front as browsers reach it, `http://host:port` (the page derives `ws://`). */
  frontUrl: string;
  /** The TLS front (`https://host:port`, ALPN h2 and http/1.1), when it is on. */
  frontTlsUrl?: string;
  /** Repository root: web/, docs/explain/ and bench/results/ are found under it. */
  root?: string;
  /** Where bench reports are looked for; default <root>/bench/results. */
  benchDir?: string;
  /** This stack's ports and state dir, written into the explainers in place of the defaults. */
  ports?: PortsInText;
  log?: Logger;
}

/** The `extraRoutes` hook, plus the load generator it owns and a way to stop it. */
export type WebRoutes = NonNullable<AdminDeps['extraRoutes']> & {
  readonly load: LoadRunner;
  /** Stop a running load (call before the stack stops). */
  close(): Promise<void>;
};

/** The web options a gateway config implies (front URLs from host and ports). */
export function webOptionsFromConfig(config: Pick<GatewayConfig, 'host'> & PortsInText): WebOptions {
  return {
    ports: config,
    frontUrl: `http://${config.host}:${config.frontPort}`,
    frontTlsUrl: config.frontTlsPort ? `https://${config.host}:${config.frontTlsPort}` : undefined,
  };
}

/** Order of the explainers in the navigation; any other docs/explain/*.md is still served. */
export const EXPLAINERS: ReadonlyArray<{ name: string; title: string }> = [
  { name: 'handshakes', title: 'Two handshakes' },
  { name: 'proxy', title: 'What the proxy translates' },
  { name: 'balancing', title: 'Per-stream vs per-connection balancing' },
  { name: 'endpoints', title: 'Adding and draining backends live' },
  { name: 'hot-restart', title: 'Hot restart and live streams' },
  { name: 'watch-frames', title: 'Watch the frames yourself' },
  { name: 'browsers', title: 'Browsers and RFC 8441' },
];

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.html': 'text/html; charset=utf-8',
};



/** The host browsers should use for the front: its own, unless it is bound to every address. */
function frontFor(base: string, req: http.IncomingMessage): URL {
  const url = new URL(base);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') {
    const host = req.headers.host ?? '127.0.0.1';
    // The Host header is the client's to get wrong ("[", "%zz"): its fault, so a 400 rather than a 500.
    if (!URL.canParse(`http://${host}`)) throw new HttpError(400, 'GW_ERR_BAD_REQUEST', `invalid Host header ${JSON.stringify(host.slice(0, 200))}`);
    url.hostname = new URL(`http://${host}`).hostname;
  }
  return url;
}

export function createWebRoutes(options: WebOptions): WebRoutes {
  const root = options.root ?? ROOT;
  const webDir = path.join(root, 'web');
  const explainDir = path.join(root, 'docs', 'explain');
  const benchDir = options.benchDir ?? path.join(root, 'bench', 'results');
  const log = options.log ?? logger('web');
  const load = new LoadRunner(options.frontUrl, log.child({ part: 'load' }));

  const pageConfig = (req: http.IncomingMessage) => {
    const front = frontFor(options.frontUrl, req);
    const tls = options.frontTlsUrl ? frontFor(options.frontTlsUrl, req) : undefined;
    return {
      frontWs: `ws://${front.host}`,
      frontHttp: front.origin,
      frontTlsWss: tls ? `wss://${tls.host}` : null,
      frontTlsHttps: tls ? tls.origin : null,
    };
  };

  /** Pages may talk to the admin server itself and to the front, and nothing else. */
  const csp = (config: ReturnType<typeof pageConfig>) =>
    [
      "default-src 'self'",
      `connect-src 'self' ${[config.frontWs, config.frontHttp, config.frontTlsWss, config.frontTlsHttps].filter(Boolean).join(' ')}`,
      "script-src 'self'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'self'",
    ].join('; ');

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers }).end(body);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => send(res, status, 'application/json', JSON.stringify(body, null, 2) + '\n');

  function page(req: http.IncomingMessage, res: http.ServerResponse, file: string): void {
    const config = pageConfig(req);
    const template = readFileSync(path.join(webDir, file), 'utf8');
    const html = template.replace('{{config}}', () => JSON.stringify(config).replace(/</g, '\\u003c'));
    send(res, 200, TYPES['.html']!, html, { 'content-security-policy': csp(config) });
  }

  function explainNav(current: string | undefined): string {
    return EXPLAINERS.map(
      (e) => `<li${e.name === current ? ' class="current"' : ''}><a href="/explain/${e.name}">${escapeHtml(e.title)}</a></li>`,
    ).join('');
  }

  function inlineSvg(src: string, alt: string): string | undefined {
    const name = /^(?:\.\/)?img\/([a-z0-9-]+\.svg)$/.exec(src)?.[1];
    if (!name) return undefined;
    const file = path.join(explainDir, 'img', name);
    if (!existsSync(file)) return undefined;
    const svg = readFileSync(file, 'utf8').replace(/<\?xml[^>]*\?>\s*/, '');
    return svg.replace(/<svg\b/, `<svg role="img" aria-label="${escapeHtml(alt)}"`);
  }

  function explain(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
    const file = path.join(explainDir, `${name}.md`);
    if (!existsSync(file)) throw new HttpError(404, 'GW_ERR_NOT_FOUND', `no explainer "${name}"`);
    const source = readFileSync(file, 'utf8');
    const rendered = renderMarkdown(options.ports ? withConfiguredPorts(source, options.ports) : source, {
      link: (href) => {
        const m = /^(?:\.\/)?([a-z0-9-]+)\.md(#.*)?$/i.exec(href);
        // Other repository files (../envoy.md) are only reachable on a checkout: keep the label.
        if (!m) return href.startsWith('#') || /^https?:\/\//.test(href) ? href : null;
        return `/explain${m[1] === 'README' ? '' : `/${m[1]}`}${m[2] ?? ''}`;
      },
      image: inlineSvg,
    });
    const config = pageConfig(req);
    const html = readFileSync(path.join(webDir, 'explain.html'), 'utf8')
      .replace('{{title}}', () => escapeHtml(rendered.title ?? name))
      .replace('{{nav}}', () => explainNav(name === 'README' ? undefined : name))
      .replace('{{body}}', () => rendered.html);
    send(res, 200, TYPES['.html']!, html, { 'content-security-policy': csp(config) });
  }

  /**
   * The chart figures of a bench report (`<figure>`s of inline SVG in its "Charts" section, as
   * bench/report.ts writes them), to show on the dashboard itself. Anything script-like is dropped.
   */
  function benchCharts(html: string): string[] {
    const start = html.indexOf('<div class="charts">');
    const end = html.indexOf('<h2>Results</h2>', start);
    if (start < 0 || end < 0) return [];
    return (html.slice(start, end).match(/<figure\b[\s\S]*?<\/figure>/g) ?? []).filter(
      (figure) => !/<script|<foreignObject|\son[a-z]+\s*=|javascript:/i.test(figure),
    );
  }

  /** The newest bench HTML report, if `npm run bench` has written one. */
  function latestBench(): { file: string; modified: number } | undefined {
    if (!existsSync(benchDir)) return undefined;
    let best: { file: string; modified: number } | undefined;
    for (const name of readdirSync(benchDir)) {
      if (!name.endsWith('.html')) continue;
      const modified = statSync(path.join(benchDir, name)).mtimeMs;
      if (!best || modified > best.modified) best = { file: name, modified };
    }
    return best;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
    const method = req.method ?? 'GET';
    const p = url.pathname;

    if (method === 'GET' && (p === '/' || p === '/index.html')) {
      page(req, res, 'chat.html');
      return true;
    }
    if (method === 'GET' && (p === '/dashboard' || p === '/dashboard/')) {
      page(req, res, 'dashboard.html');
      return true;
    }

    const asset = /^\/assets\/([a-z0-9-]+\.(?:js|css|svg))$/.exec(p);
    if (asset && method === 'GET') {
      const file = path.join(webDir, asset[1]!);
      if (!existsSync(file)) throw new HttpError(404, 'GW_ERR_NOT_FOUND', `no asset ${asset[1]}`);
      send(res, 200, TYPES[path.extname(file)]!, readFileSync(file));
      return true;
    }

    if (method === 'GET' && (p === '/explain' || p === '/explain/')) {
      explain(req, res, 'README');
      return true;
    }
    const img = /^\/explain\/img\/([a-z0-9-]+\.svg)$/.exec(p);
    if (img && method === 'GET') {
      const file = path.join(explainDir, 'img', img[1]!);
      if (!existsSync(file)) throw new HttpError(404, 'GW_ERR_NOT_FOUND', `no diagram ${img[1]}`);
      send(res, 200, TYPES['.svg']!, readFileSync(file));
      return true;
    }
    const doc = /^\/explain\/([a-z0-9-]+)$/.exec(p);
    if (doc && method === 'GET') {
      explain(req, res, doc[1]!);
      return true;
    }

    if (p === '/bench' && method === 'GET') {
      const latest = latestBench();
      json(
        res,
        200,
        latest
          ? {
              file: path.relative(root, path.join(benchDir, latest.file)),
              modified: new Date(latest.modified).toISOString(),
              url: '/bench/latest',
              charts: benchCharts(readFileSync(path.join(benchDir, latest.file), 'utf8')),
            }
          : { file: null, hint: 'no bench report yet: run `npm run bench -- --quick` (about a minute) and reload' },
      );
      return true;
    }
    if (p === '/bench/latest' && method === 'GET') {
      const latest = latestBench();
      if (!latest) throw new HttpError(404, 'GW_ERR_NOT_FOUND', 'no bench report yet: run `npm run bench -- --quick`');
      // The report is self-contained (inline CSS and SVG, a JSON data block, no script to run).
      send(res, 200, TYPES['.html']!, readFileSync(path.join(benchDir, latest.file)), {
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
      });
      return true;
    }

    if (p === '/load') {
      if (method === 'GET') {
        json(res, 200, load.status());
        return true;
      }
      if (method === 'DELETE') {
        json(res, 200, await load.stop());
        return true;
      }
      if (method === 'POST') {
        // Loopback visitors only: this opens up to 2,000 sessions against the front.
        if (!isLoopbackHost(req.socket.remoteAddress ?? '')) throw new HttpError(403, 'GW_ERR_LOAD_NOT_LOCAL', 'the load button is for loopback visitors only');
        json(res, 202, load.start(parseBody(loadRequestSchema, await readJsonBody(req, 16 * 1024))));
        return true;
      }
      throw new HttpError(405, 'GW_ERR_METHOD', `${method} /load is not supported`);
    }
    return false;
  }

  const routes = (async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> => {
    try {
      return await handle(req, res, url);
    } catch (err) {
      const status =
        err instanceof HttpError ? err.status : err instanceof LoadBusyError ? 409 : err instanceof LoadNotLocalError ? 403 : 500;
      if (status === 500) log.error({ err }, 'web route failed');
      const code = err instanceof GatewayError ? err.code : 'GW_ERR_INTERNAL';
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code, message: (err as Error).message } }) + '\n');
      return true;
    }
  }) as WebRoutes;
  Object.defineProperty(routes, 'load', { value: load });
  Object.defineProperty(routes, 'close', { value: async () => void (await load.stop()) });
  return routes;
}
