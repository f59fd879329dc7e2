import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackendProcess, type BackendProcess } from '../gateway/core/backend-process.js';
import { freePort } from '../lib/ports.js';
import { createAdminHttpServer, type AdminHttpServer } from '../gateway/admin/http-server.js';
import { createWebRoutes, EXPLAINERS, type WebRoutes } from '../gateway/admin/pages.js';
import { renderMarkdown } from '../gateway/admin/markdown.js';
import { logger } from '../lib/log.js';
import { findChromium, launchChromium, pngStats, startWebStack, type TestBrowser, type WebStack } from './helpers/browser.js';
import { describeEachFront } from './helpers/front-matrix.js';

// The browser path, in a real Chromium (Debian's, driven by playwright-core): the chat page joins a
// room through the front with the browser's own WebSocket, and the dashboard follows the gateway live.
// Without Chromium these tests are skipped, and say so.

const ARTIFACTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'test-artifacts');
const chromium = findChromium();
const chromiumPath = 'path' in chromium ? chromium.path : undefined;
if (!chromiumPath) console.warn(`test/browser.test.ts: SKIPPING the browser tests: ${'missing' in chromium ? chromium.missing : ''}`);

interface Welcome {
  type: 'welcome';
  room: string;
  member: string;
  backend: string;
  transport: 'h1' | 'h2';
}

async function welcomeOf(page: Page): Promise<Welcome> {
  const handle = await page.waitForFunction(() => (window as unknown as { gwChat?: { welcome: unknown } }).gwChat?.welcome, undefined, { timeout: 10_000 });
  return (await handle.jsonValue()) as Welcome;
}

/** Save a screenshot as a test artifact and check it shows something (not one flat colour). */
async function screenshot(page: Page, name: string): Promise<ReturnType<typeof pngStats> & { bytes: number; file: string }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const png = await page.screenshot({ fullPage: true });
  const file = path.join(ARTIFACTS, name);
  writeFileSync(file, png);
  return { ...pngStats(png), bytes: png.length, file };
}

function intText(page: Page, testId: string): Promise<number> {
  return page.locator(`[data-testid=${testId}]`).innerText().then((t) => Number(t.replace(/[^\d]/g, '') || NaN));
}

describeEachFront('browser: chat page and dashboard in Chromium, through the front', (front) => {
  let stack: WebStack | undefined;
  let browser: TestBrowser | undefined;
  /** Every URL the pages asked for: the page must work with no network beyond this machine. */
  const requested: string[] = [];

  beforeAll(async () => {
    if (!chromiumPath) return;
    [stack, browser] = await Promise.all([
      startWebStack({ front, healthIntervalMs: 500 }),
      // Accepting the self-signed TLS front only matters to the RFC 8441 case below.
      launchChromium(chromiumPath, { ignoreHTTPSErrors: true }),
    ]);
    browser.context.on('request', (r) => requested.push(r.url()));
    // The admin token in the URL is traded for a cookie that every page below then uses.
    const page = await browser.context.newPage();
    const res = await page.goto(`${stack.adminUrl}/dashboard?token=${stack.adminToken}`);
    expect(res?.status()).toBe(200);
    await page.close();
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.dispose();
  });

  it.skipIf(!chromiumPath)('two pages in one room: a message typed in one appears in the other, over HTTP/1.1 Upgrade', async () => {
    const { context } = browser!;
    const room = `browser-${Date.now().toString(36)}`;
    const [a, b] = await Promise.all([context.newPage(), context.newPage()]);
    try {
      await Promise.all([a.goto(`${stack!.adminUrl}/?room=${room}`), b.goto(`${stack!.adminUrl}/?room=${room}`)]);
      const [wa, wb] = await Promise.all([welcomeOf(a), welcomeOf(b)]);
      // The front told each backend what the browser spoke: HTTP/1.1 Upgrade on the plain port.
      expect(wa).toMatchObject({ room, transport: 'h1' });
      expect(wb).toMatchObject({ room, transport: 'h1' });
      const ids = stack!.registry.list().map((e) => e.id);
      expect(ids).toContain(wa.backend);
      expect(ids).toContain(wb.backend);
      await expect.poll(() => a.locator('[data-testid=transport]').innerText()).toContain('HTTP/1.1 Upgrade');
      expect(await a.locator('[data-testid=ws-url]').innerText()).toBe(`${stack!.frontUrl.replace('http:', 'ws:')}/chat/${room}`);

      const text = `hello from page A ${Math.random().toString(36).slice(2, 8)}`;
      await a.locator('[data-testid=message-input]').fill(text);
      await a.locator('[data-testid=message-input]').press('Enter');
      const received = b.locator('[data-testid=message]', { hasText: text });
      await received.waitFor({ timeout: 5_000 });
      expect(await received.getAttribute('data-offset')).toMatch(/^\d+-\d+$/);
      const onB = await b.evaluate(() => (window as unknown as { gwChat: { messages: Array<{ text: string; from: string; backend: string }> } }).gwChat.messages);
      expect(onB.find((m) => m.text === text)).toMatchObject({ from: wa.member, backend: wa.backend });
      // A sees its own message come back from the room too.
      await a.locator('[data-testid=message]', { hasText: text }).waitFor({ timeout: 5_000 });

      // The backends' own count agrees: two sessions whose client spoke HTTP/1.1, none HTTP/2.
      await expect
        .poll(
          async () => {
            const view = (await (await stack!.adminFetch('/endpoints')).json()) as { endpoints: Array<{ health: { transports?: { h1: number; h2: number } } | null }> };
            const t = view.endpoints.map((e) => e.health?.transports ?? { h1: 0, h2: 0 });
            return { h1: t.reduce((n, x) => n + x.h1, 0), h2: t.reduce((n, x) => n + x.h2, 0) };
          },
          { timeout: 5_000, interval: 250 },
        )
        .toEqual({ h1: 2, h2: 0 });

      const shot = await screenshot(b, `chat-${front}.png`);
      expect(shot.bytes).toBeGreaterThan(10_000);
      expect(shot.lumaVariance).toBeGreaterThan(100);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it.skipIf(!chromiumPath)('dashboard shows an endpoint added through the API and a hot restart within 2 s, and a load on one connection', async () => {
    const page = await browser!.context.newPage();
    let extra: BackendProcess | undefined;
    try {
      const [, started] = await Promise.all([
        page.goto(`${stack!.adminUrl}/dashboard`),
        freePort().then((port) => startBackendProcess(stack!.config, 'b4', port, logger('test-b4'), 'lines', stack!.redisUrl)),
      ]);
      extra = started;
      await page.locator('#live.on').waitFor({ timeout: 5_000 });
      await page.locator('[data-endpoint=b1]').waitFor({ timeout: 5_000 });
      await page.locator('[data-testid=generations] tr').first().waitFor({ timeout: 5_000 });

      // An endpoint added through the API appears within 2 s (the SSE event makes it immediate).
      const added = await stack!.adminFetch('/endpoints', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'b4', address: `${extra.host}:${extra.port}`, weight: 2 }),
      });
      expect(added.status).toBe(201);
      const addedAt = Date.now();
      await page.locator('[data-endpoint=b4][data-state=active]').waitFor({ timeout: 2_000 });
      expect(Date.now() - addedAt).toBeLessThanOrEqual(2_000);
      await page.locator('[data-testid=events] li[data-type=endpoint]', { hasText: 'b4 added' }).waitFor({ timeout: 2_000 });

      // The load button: 200 sessions over HTTP/2 from the gateway to the front, on one TCP connection.
      await page.locator('[data-testid=load-sessions]').fill('200');
      await page.locator('[data-testid=load-seconds]').fill('20');
      await page.locator('[data-testid=load-transport]').selectOption('h2');
      await page.locator('[data-testid=load-start]').click();
      await expect.poll(() => stack!.web.load.status().opened.h2, { timeout: 15_000 }).toBe(200);
      const load = stack!.web.load.status();
      expect(load).toMatchObject({ state: 'running', failed: 0, connections: { h2: 1, h1: 0 } });
      // The front counts it the same way: about 200 sessions on a handful of client connections.
      await expect.poll(() => intText(page, 'front-sessions'), { timeout: 5_000 }).toBeGreaterThanOrEqual(200);
      expect(await intText(page, 'front-connections')).toBeLessThanOrEqual(3);
      await expect.poll(() => page.locator('[data-testid=load-status]').innerText(), { timeout: 3_000 }).toContain('200 sessions open on 1 TCP connection');

      // A hot restart appears within 2 s: the new generation current, the old one draining what it holds.
      const restart = (await (await stack!.adminFetch('/hot-restart', { method: 'POST' })).json()) as { generation: number; oldPids: number[] };
      const restartedAt = Date.now();
      await page.locator(`[data-testid=generations] tr[data-generation="${restart.generation}"][data-current=true]`).waitFor({ timeout: 2_000 });
      await page.locator('[data-testid=events] li[data-type=hot-restart]', { hasText: `generation ${restart.generation}` }).waitFor({ timeout: 2_000 });
      expect(Date.now() - restartedAt).toBeLessThanOrEqual(2_000);
      // The old generation still carries the load's streams (GOAWAY stops only new ones).
      const old = page.locator(`[data-testid=generations] tr[data-current=false]`).first();
      await old.waitFor({ timeout: 3_000 });
      if (front === 'haproxy') {
        await expect.poll(async () => Number((await old.locator('td.num').first().innerText()).replace(/[^\d]/g, '')), { timeout: 3_000 }).toBeGreaterThanOrEqual(200);
      } else {
        // Envoy has no per-epoch split (the new epoch adds the old one's gauges into its own while
        // both live): the rows say so with "–", and the front's totals still count the load's sessions.
        expect(await old.locator('td.num').first().innerText()).toBe('–');
        await expect.poll(() => intText(page, 'front-sessions'), { timeout: 5_000 }).toBeGreaterThanOrEqual(200);
      }

      // Let a poll land the endpoint health (b4's first check, the h2 split) before the picture.
      await expect.poll(() => page.locator('[data-endpoint=b4] td[data-field=sessions]').innerText(), { timeout: 3_000 }).not.toBe('–');
      // The charts over time: a line per backend (b4 too), the front's sessions reaching the load,
      // messages per second from the backends' counts, and a dashed mark at the hot restart.
      await expect.poll(() => page.locator('[data-testid=chart-backends] path[data-series=b4]').count(), { timeout: 5_000 }).toBe(1);
      await page.locator('[data-testid=chart-front] line.mark.hot-restart').waitFor({ state: 'attached', timeout: 3_000 });
      const peak = (field: 'sessions' | 'messagesPerS') =>
        page.evaluate((f) => Math.max(0, ...(window as unknown as { gwDashboard: { history: Array<Record<string, number | null>> } }).gwDashboard.history.map((s) => s[f] ?? 0)), field);
      await expect.poll(() => peak('sessions'), { timeout: 5_000 }).toBeGreaterThanOrEqual(200);
      await expect.poll(() => peak('messagesPerS'), { timeout: 10_000 }).toBeGreaterThan(0);
      const shot = await screenshot(page, `dashboard-${front}.png`);
      expect(shot.width).toBeGreaterThanOrEqual(1_000);
      expect(shot.bytes).toBeGreaterThan(20_000);
      expect(shot.lumaVariance).toBeGreaterThan(100);
      expect(shot.distinctColours).toBeGreaterThan(20);

      // Reloaded after the fact, the page still lists what happened before it (replayed history), once.
      await page.reload();
      await page.locator('[data-testid=events] li[data-type=hot-restart]', { hasText: `generation ${restart.generation}` }).waitFor({ timeout: 3_000 });
      await page.locator('[data-testid=events] li[data-type=endpoint]', { hasText: 'b4 added' }).waitFor({ timeout: 3_000 });
      expect(await page.locator('[data-testid=events] li[data-type=hot-restart]', { hasText: `generation ${restart.generation}` }).count()).toBe(1);
    } finally {
      await stack!.web.close();
      await page.close();
      if (stack!.registry.has('b4')) stack!.registry.remove('b4');
      await extra?.process.stop(5_000);
    }
  });

  it.skipIf(!chromiumPath)('a first visit without the token: a login page, a wrong token said so, the right one opens the dashboard', async () => {
    const { context } = browser!;
    await context.clearCookies();
    const page = await context.newPage();
    try {
      const res = await page.goto(`${stack!.adminUrl}/dashboard`);
      expect(res?.status()).toBe(401);
      await page.locator('[data-testid=login]').waitFor({ timeout: 5_000 });
      // The stylesheet is open to anyone: the login page is styled, not raw.
      expect(await page.evaluate(() => getComputedStyle(document.querySelector('main')!).maxWidth)).toBe('560px');
      await screenshot(page, `login-${front}.png`);

      await page.locator('[data-testid=login-token]').fill('not-the-token');
      await page.locator('[data-testid=login-submit]').click();
      await page.locator('[data-testid=login-error]').waitFor({ timeout: 5_000 });

      await page.locator('[data-testid=login-token]').fill(stack!.adminToken);
      await page.locator('[data-testid=login-submit]').click();
      await page.locator('#live.on').waitFor({ timeout: 10_000 });
      // The token left the address bar for a cookie.
      expect(page.url()).toBe(`${stack!.adminUrl}/dashboard`);
      // API clients still get JSON.
      const api = await fetch(`${stack!.adminUrl}/endpoints`, { headers: { accept: 'application/json' } });
      expect(api.status).toBe(401);
      expect(((await api.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_UNAUTHORIZED');
    } finally {
      await page.close();
    }
  });

  it.skipIf(!chromiumPath)('TLS front: with an HTTP/2 connection already open, Chrome carries the page\'s WebSocket as an RFC 8441 stream', async () => {
    const page = await browser!.context.newPage();
    try {
      await page.goto(`${stack!.adminUrl}/`);
      await page.locator('#tls-choice input').check();
      await page.locator('[data-testid=room]').fill('tls-room');
      await page.locator('[data-testid=join]').click();
      const welcome = await welcomeOf(page);
      expect(welcome).toMatchObject({ room: 'tls-room', transport: 'h2' });
      expect(await page.locator('[data-testid=ws-url]').innerText()).toMatch(/^wss:\/\//);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!chromiumPath)('explainers render offline with inline SVG diagrams, and nothing was fetched from off this machine', async () => {
    const page = await browser!.context.newPage();
    try {
      for (const { name, title } of EXPLAINERS) {
        const res = await page.goto(`${stack!.adminUrl}/explain/${name}`);
        expect(res?.status(), name).toBe(200);
        expect(await page.locator('article.doc h1').innerText()).toBe(title);
      }
      await page.goto(`${stack!.adminUrl}/explain/handshakes`);
      expect(await page.locator('article.doc figure svg').count()).toBeGreaterThan(0);
      expect(await page.locator('article.doc figure svg text', { hasText: ':protocol websocket' }).count()).toBeGreaterThan(0);
      await page.goto(`${stack!.adminUrl}/explain/endpoints`);
      expect(await page.locator('article.doc figure svg text', { hasText: 'endpoint registry' }).count()).toBeGreaterThan(0);
      await page.goto(`${stack!.adminUrl}/explain`);
      expect(await page.locator('article.doc a[href="/explain/watch-frames"]').count()).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
    expect(requested.length).toBeGreaterThan(10);
    const offHost = requested.filter((u) => !/^(https?|wss?):\/\/127\.0\.0\.1:\d+\//.test(u) && !u.startsWith('data:'));
    expect(offHost).toEqual([]);
  });
});

// The routes on their own (no stack, no browser): bench report discovery, the load endpoint's bounds,
// falling through to the admin API for everything else, and the Markdown renderer's escaping.
describe('web routes without a browser', () => {
  let server: AdminHttpServer;
  let base: string;
  let routes: WebRoutes;
  let benchDir: string;

  beforeAll(async () => {
    benchDir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-'));
    routes = createWebRoutes({ frontUrl: 'http://127.0.0.1:1', benchDir, log: logger('web-test') });
    // The admin server's HTTP layer without the admin API: what the pages leave alone answers 418.
    server = createAdminHttpServer(logger('web-test'));
    await server.register(routes.routes);
    server.setNotFoundHandler((_request, reply) => reply.code(418).send('not mine'));
    await server.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await routes?.close();
    await server?.close();
    rmSync(benchDir, { recursive: true, force: true });
  });

  it('finds the newest bench report, or says how to make one', async () => {
    expect(await (await fetch(`${base}/bench`)).json()).toMatchObject({ file: null, hint: expect.stringContaining('npm run bench -- --quick') });
    expect((await fetch(`${base}/bench/latest`)).status).toBe(404);
    writeFileSync(path.join(benchDir, 'quick-old.html'), '<!doctype html><p>old</p>');
    const newer = path.join(benchDir, 'quick-new.html');
    writeFileSync(
      newer,
      '<!doctype html><h2>Charts</h2><div class="charts"><figure id="a"><svg><text>chart</text></svg></figure>\n' +
        '<figure id="b"><svg onload="alert(1)"></svg></figure></div>\n<h2>Results</h2><table></table>',
    );
    const { utimesSync } = await import('node:fs');
    utimesSync(path.join(benchDir, 'quick-old.html'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const info = (await (await fetch(`${base}/bench`)).json()) as { file: string; url: string; charts: string[] };
    expect(info).toMatchObject({ file: expect.stringMatching(/quick-new\.html$/), url: '/bench/latest' });
    // The charts come along for the dashboard; the one with an event handler attribute does not.
    expect(info.charts).toEqual(['<figure id="a"><svg><text>chart</text></svg></figure>']);
    const latest = await fetch(`${base}/bench/latest`);
    expect(latest.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await latest.text()).toContain('chart');
  });

  it('bounds the load: at most 2,000 sessions and 60 s, known fields only, one run at a time', async () => {
    const post = (body: unknown) => fetch(`${base}/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (const [body, field] of [
      [{ sessions: 2_001, seconds: 5 }, 'sessions'],
      [{ sessions: 10, seconds: 61 }, 'seconds'],
      [{ sessions: 10, seconds: 5, transport: 'h3' }, 'transport'],
      [{ sessions: 10, seconds: 5, extra: 1 }, 'extra'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(`"${field}"`);
    }
    // Nothing listens on port 1: every session fails, quickly, and the run ends on its own.
    const started = await post({ sessions: 3, seconds: 2, transport: 'mixed' });
    expect(started.status).toBe(202);
    expect(await started.json()).toMatchObject({ requested: { h2: 2, h1: 1 } });
    // The run lasts its `seconds` even when every session failed, and a second one must wait.
    const busy = await post({ sessions: 1, seconds: 1 });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_LOAD_BUSY');
    const stopped = (await (await fetch(`${base}/load`, { method: 'DELETE' })).json()) as { state: string; failed: number; lastError: string };
    expect(stopped).toMatchObject({ state: 'done', failed: 3 });
    expect(stopped.lastError).toBeTruthy();
  });

  it('leaves every other path to the admin API', async () => {
    for (const p of ['/endpoints', '/hot-restart', '/front', '/events', '/assets/app.css.map', '/assets/%2e%2e%2fpackage.json', '/explain/img/x.png']) {
      expect((await fetch(`${base}${p}`)).status, p).toBe(418);
    }
    expect((await fetch(`${base}/explain/no-such-page`)).status).toBe(404);
  });

  // GitHub-flavoured tables: a `|` inside a cell, code span or not, is written `\|`.
  it('renders Markdown with all text escaped', () => {
    const { title, html } = renderMarkdown('# A <b>title</b>\n\nSome `<code>` and **`bold code`** and <script>x</script>.\n\n| a | b |\n|---|---|\n| `x\\|y` | [link](other.md) |\n', {
      link: (href) => `/explain/${href.replace('.md', '')}`,
    });
    expect(title).toBe('A <b>title</b>');
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).toContain('<strong><code>bold code</code></strong>');
    expect(html).toContain('<td><code>x|y</code></td>');
    expect(html).toContain('<a href="/explain/other">link</a>');
  });
});
