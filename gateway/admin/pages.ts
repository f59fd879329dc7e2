import fastifyStatic from '@fastify/static';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../../lib/config.js';
import { logger } from '../../lib/log.js';
import type { AdminRoutes } from './api.js';
import { HttpError } from './http-server.js';
import { isLoopbackHost, loadRequestSchema, LoadRunner } from './load.js';
import { withConfiguredPorts, type PortsInText } from './configured-ports.js';
import { escapeHtml, renderMarkdown } from './markdown.js';

// The page, the dashboard and the explainers: a fastify plugin the admin API's server registers as
// its `extraRoutes` (so they sit behind the same admin token: visit `/?token=<token>` once and the
// admin API trades it for a cookie). Nothing is fetched from the network: the HTML, CSS and JS are
// the files in web/, the explainers are docs/explain/*.md rendered here, their diagrams are SVG files
// inlined into the page.
//
//   GET  /                    chat page: the browser's own WebSocket through the front
//   GET  /dashboard           live view of endpoints, front, generations, events; buttons
//   GET  /assets/<file>       web/<file> (.js .css .svg), by @fastify/static
//   GET  /explain[/<name>]    docs/explain/<name>.md as HTML (index: docs/explain/README.md)
//   GET  /explain/img/<f>.svg a diagram on its own
//   GET  /bench               newest bench/results/*.html: {file, modified, charts: [<figure> SVG]} or {file: null, hint}
//   GET  /bench/latest        that report itself (self-contained HTML with inline SVG charts)
//   GET  /load                the load button's status
//   POST /load                {sessions ≤ 2000, seconds ≤ 60, transport?: "h2"|"h1"|"mixed"} → 202
//   DELETE /load              stop the running load
// Anything else (a missing asset included) is the admin server's 404.

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

/** The routes (the admin server's `extraRoutes`), the load generator they own and a way to stop it. */
export interface WebRoutes {
  readonly routes: AdminRoutes;
  readonly load: LoadRunner;
  /** Stop a running load (call before the stack stops). */
  close(): Promise<void>;
}

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
  { name: 'flow-control', title: 'Flow control under multiplexing' },
  { name: 'closing', title: 'How sessions end: GOAWAY, RST_STREAM and close codes' },
  { name: 'watch-frames', title: 'Watch the frames yourself' },
  { name: 'browsers', title: 'Browsers and RFC 8441' },
];

const HTML = 'text/html; charset=utf-8';
/** The files under /assets/ and /explain/img/: one name, no directories, only these types. */
const ASSET = /^\/[a-z0-9-]+\.(?:js|css|svg)$/;
const DIAGRAM = /^\/[a-z0-9-]+\.svg$/;

/** The host browsers should use for the front: its own, unless it is bound to every address. */
function frontFor(base: string, request: FastifyRequest): URL {
  const url = new URL(base);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') {
    const host = request.headers.host ?? '127.0.0.1';
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

  const pageConfig = (request: FastifyRequest) => {
    const front = frontFor(options.frontUrl, request);
    const tls = options.frontTlsUrl ? frontFor(options.frontTlsUrl, request) : undefined;
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

  const sendHtml = (request: FastifyRequest, reply: FastifyReply, html: string) =>
    reply.type(HTML).header('content-security-policy', csp(pageConfig(request))).send(html);

  /** A page of web/ with the front's URLs filled in (as JSON, safe inside <script>). */
  const page = (file: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const template = readFileSync(path.join(webDir, file), 'utf8');
    return sendHtml(request, reply, template.replace('{{config}}', () => JSON.stringify(pageConfig(request)).replace(/</g, '\\u003c')));
  };

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

  function explain(request: FastifyRequest, reply: FastifyReply, name: string) {
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
    const html = readFileSync(path.join(webDir, 'explain.html'), 'utf8')
      .replace('{{title}}', () => escapeHtml(rendered.title ?? name))
      .replace('{{nav}}', () => explainNav(name === 'README' ? undefined : name))
      .replace('{{body}}', () => rendered.html);
    return sendHtml(request, reply, html);
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

  const routes: AdminRoutes = async (app) => {
    // Pages and files change with the checkout: never cached, never type-sniffed.
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
      return payload;
    });
    const files = { decorateReply: false, index: false, cacheControl: false } as const;
    await app.register(fastifyStatic, { ...files, root: webDir, prefix: '/assets/', allowedPath: (p) => ASSET.test(p) });
    await app.register(fastifyStatic, { ...files, root: path.join(explainDir, 'img'), prefix: '/explain/img/', allowedPath: (p) => DIAGRAM.test(p) });

    for (const p of ['/', '/index.html']) app.get(p, page('chat.html'));
    for (const p of ['/dashboard', '/dashboard/']) app.get(p, page('dashboard.html'));
    for (const p of ['/explain', '/explain/']) app.get(p, async (request, reply) => explain(request, reply, 'README'));
    app.get('/explain/:name', async (request: FastifyRequest<{ Params: { name: string } }>, reply) => {
      // Lower-case names only: README is the index at /explain.
      if (!/^[a-z0-9-]+$/.test(request.params.name)) return reply.callNotFound();
      return explain(request, reply, request.params.name);
    });

    app.get('/bench', async () => {
      const latest = latestBench();
      if (!latest) return { file: null, hint: 'no bench report yet: run `npm run bench -- --quick` (about a minute) and reload' };
      return {
        file: path.relative(root, path.join(benchDir, latest.file)),
        modified: new Date(latest.modified).toISOString(),
        url: '/bench/latest',
        charts: benchCharts(readFileSync(path.join(benchDir, latest.file), 'utf8')),
      };
    });
    app.get('/bench/latest', async (_request, reply) => {
      const latest = latestBench();
      if (!latest) throw new HttpError(404, 'GW_ERR_NOT_FOUND', 'no bench report yet: run `npm run bench -- --quick`');
      // The report is self-contained (inline CSS and SVG, a JSON data block, no script to run).
      return reply
        .type(HTML)
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'")
        .send(readFileSync(path.join(benchDir, latest.file)));
    });

    app.get('/load', async () => load.status());
    app.delete('/load', async () => load.stop());
    app.post(
      '/load',
      {
        bodyLimit: 16 * 1024,
        schema: { body: loadRequestSchema },
        // Loopback visitors only: this opens up to 2,000 sessions against the front.
        onRequest: async (request) => {
          if (!isLoopbackHost(request.socket.remoteAddress ?? '')) throw new HttpError(403, 'GW_ERR_LOAD_NOT_LOCAL', 'the load button is for loopback visitors only');
        },
      },
      async (request, reply) => reply.code(202).send(load.start(request.body)),
    );
  };

  return { routes, load, close: async () => void (await load.stop()) };
}
