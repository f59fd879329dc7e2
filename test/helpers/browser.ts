import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium, type BrowserContext } from 'playwright-core';
import type { GatewayConfig } from '../../lib/config.js';
import type { Stack } from '../../gateway/harness.js';
import { startTestStack } from './stack.js';
import { createWebRoutes, webOptionsFromConfig, type WebOptions, type WebRoutes } from '../../gateway/admin/pages.js';

// A real Chromium for the page and dashboard tests: Debian's `chromium` driven by playwright-core
// (which downloads no browser of its own), headless, with a fresh profile each time.

/** Where Chromium is, or why it is not there. CHROMIUM_PATH overrides the Debian locations. */
export function findChromium(): { path: string } | { missing: string } {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return { path: candidate };
    } catch {
      // try the next one
    }
  }
  return { missing: `no Chromium at ${candidates.join(', ')} (apt-get install chromium, or set CHROMIUM_PATH)` };
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh user-data-dir, removed on close. */
export async function launchChromium(executablePath: string, options: { ignoreHTTPSErrors?: boolean } = {}): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'gw-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export interface WebStack extends Stack {
  web: WebRoutes;
  /** The admin token (the page is behind it, like the rest of the admin API). */
  adminToken: string;
  dispose(): Promise<void>;
}

/** startTestStack() with the web routes wired in, as gateway/main.ts does for `npm start`. */
export async function startWebStack(overrides: Partial<GatewayConfig> = {}, web: Partial<WebOptions> = {}, backendCount = 3): Promise<WebStack> {
  const adminToken = randomBytes(24).toString('hex');
  let routes!: WebRoutes;
  const stack = await startTestStack({ adminToken, ...overrides }, backendCount, (config) => {
    routes = createWebRoutes({ ...webOptionsFromConfig(config), ...web });
    return routes.routes;
  });
  return {
    ...stack,
    web: routes,
    adminToken,
    async dispose() {
      await routes.close();
      await stack.dispose();
    },
  };
}

// ---- PNG check ------------------------------------------------------------------------------------

export interface PngStats {
  width: number;
  height: number;
  /** Variance of the luma (0..255) over every pixel: near 0 for a blank (single-colour) image. */
  lumaVariance: number;
  /** Distinct colours among a sample of pixels. */
  distinctColours: number;
}

/** Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium's screenshots are) and measure it. */
export function pngStats(png: Buffer): PngStats {
  if (png.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') throw new Error('not a PNG');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [bitDepth, colourType, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (bitDepth !== 8 || interlace !== 0 || (colourType !== 2 && colourType !== 6)) {
        throw new Error(`unsupported PNG (bit depth ${bitDepth}, colour type ${colourType}, interlace ${interlace})`);
      }
      channels = colourType === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : undefined;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels]! : 0;
      const b = prev ? prev[x]! : 0;
      const c = prev && x >= channels ? prev[x - channels]! : 0;
      let predictor = 0;
      if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[x] = (line[x]! + predictor) & 0xff;
    }
  }
  let sum = 0;
  let sumSq = 0;
  const colours = new Set<number>();
  const n = width * height;
  for (let i = 0; i < n; i++) {
    const p = i * channels;
    const [r, g, b] = [pixels[p]!, pixels[p + 1]!, pixels[p + 2]!];
    const luma = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += luma;
    sumSq += luma * luma;
    if (i % 7 === 0) colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / n;
  return { width, height, lumaVariance: sumSq / n - mean * mean, distinctColours: colours.size };
}
