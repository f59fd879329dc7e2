import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as errors from '../lib/errors.js';
import { CLOSE_CODES, CloseCode, ERROR_CODES, GatewayError, isErrorCode, reopensAfter } from '../lib/errors.js';

// One registry of error codes and one table of close codes (lib/errors.ts), checked against what
// the source raises and sends and against the README, which shows both tables as rendered here.
// `UPDATE_DOCS=1 npx vitest run test/errors.test.ts` rewrites the README tables from the code.

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['lib', 'client', 'backend', 'gateway', 'scripts', 'bench', 'web'];
const SKIP_DIRS = new Set(['node_modules', 'results']);

function filesUnder(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...filesUnder(rel, exts));
    } else if (exts.some((e) => entry.name.endsWith(e))) out.push(rel);
  }
  return out;
}

const sources = SOURCE_DIRS.flatMap((d) => filesUnder(d, ['.ts', '.js', '.html'])).map((file) => ({ file, text: readFileSync(path.join(ROOT, file), 'utf8') }));
const docs = ['README.md', ...filesUnder('docs', ['.md'])].map((file) => ({ file, text: readFileSync(path.join(ROOT, file), 'utf8') }));
const codes = Object.keys(ERROR_CODES);

/** GW_ERR_ names in a file that are not in the registry; a family (`GW_ERR_XDS_*`, `GW_ERR_XDS_${string}`) must match a code. */
function unlistedCodes({ file, text }: { file: string; text: string }): string[] {
  return [...text.matchAll(/(GW_ERR_[A-Z0-9_]+)(\*|\$\{)?/g)]
    .filter(([, name, family]) => (family ? !codes.some((c) => c.startsWith(name!)) : !isErrorCode(name)))
    .map(([match]) => `${file}: ${match}`);
}

describe('error codes: one registry', () => {
  it('every GW_ERR_ string in the source is in ERROR_CODES', () => {
    expect(sources.flatMap(unlistedCodes)).toEqual([]);
  });

  it('every code in ERROR_CODES is raised or answered somewhere (quoted in the source)', () => {
    const used = new Set(sources.flatMap(({ text }) => [...text.matchAll(/'(GW_ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!)));
    expect(codes.filter((c) => !used.has(c))).toEqual([]);
  });

  it('no error is a bare GatewayError: each says what went wrong with a class of its own', () => {
    // GatewayError is abstract, so tsc refuses `new GatewayError(...)`; this names the file if a cast slips one through.
    const bare = sources.filter(({ text }) => /new GatewayError\(/.test(text)).map(({ file }) => file);
    expect(bare).toEqual([]);
  });

  it('the classes of lib/errors.ts construct with registry codes, and carry no close code', () => {
    const made = (Object.values(errors) as unknown[])
      .filter((v): v is new (...a: unknown[]) => GatewayError => typeof v === 'function' && v.prototype instanceof GatewayError)
      .map((C) => new C('x', 'y', 'z'));
    expect(made.length).toBeGreaterThanOrEqual(12);
    for (const e of made) {
      expect(isErrorCode(e.code), e.name).toBe(true);
      expect(e).not.toHaveProperty('closeCode');
    }
  });

  it('docs name only listed codes (a `GW_ERR_X_*` family must match one)', () => {
    expect(docs.flatMap(unlistedCodes)).toEqual([]);
  });

  it('a wire code from another version is not taken for one of ours', () => {
    expect(isErrorCode('GW_ERR_TIMEOUT')).toBe(true);
    expect(isErrorCode('GW_ERR_NO_SUCH_THING')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode(undefined)).toBe(false);
  });
});

describe('close codes: one table', () => {
  it('lists what the backend sends, what ws answers, and what only a local report carries', () => {
    expect(CLOSE_CODES.map((r) => r.code)).toEqual(expect.arrayContaining([1000, 1001, 1003, 1008, 1009, 1011, 1012, 1013, 1005, 1006, 1015]));
    expect(new Set(CLOSE_CODES.map((r) => r.code)).size).toBe(CLOSE_CODES.length);
    // RFC 6455 §7.4.1: 1005, 1006 and 1015 must never be put in a close frame.
    expect(CLOSE_CODES.filter((r) => !r.onWire).map((r) => r.code)).toEqual([1005, 1006, 1015]);
    expect(CLOSE_CODES.filter((r) => r.sentBy.startsWith('never on the wire')).map((r) => r.code)).toEqual([1005, 1006, 1015]);
    expect(CloseCode).toMatchObject({ NORMAL: 1000, GOING_AWAY: 1001, UNSUPPORTED_DATA: 1003, POLICY_VIOLATION: 1008, MESSAGE_TOO_BIG: 1009, INTERNAL_ERROR: 1011 });
    expect(Object.isFrozen(CloseCode)).toBe(true);
  });

  it('reopen after going away, lost connections, internal errors, restarts and overload; stop after anything else', () => {
    // The policy SessionKeeper had before the table existed, spelled out so a table edit that changes it shows here.
    const reopen = [1001, 1005, 1006, 1011, 1012, 1013];
    expect(CLOSE_CODES.filter((r) => r.reopen).map((r) => r.code)).toEqual(reopen);
    for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1015, 4000, 4401, 4999, 999]) expect(reopensAfter(code), String(code)).toBe(false);
    for (const code of reopen) expect(reopensAfter(code), String(code)).toBe(true);
  });

  it('the backend closes by name from the table, never with a bare number', () => {
    const bare = filesUnder('backend', ['.ts']).flatMap((file) =>
      [...readFileSync(path.join(ROOT, file), 'utf8').matchAll(/\.close\(\s*\d{4}/g)].map((m) => `${file}: ${m[0]}`),
    );
    expect(bare).toEqual([]);
  });
});

function errorTable(): string {
  return ['| code | meaning |', '|---|---|', ...Object.entries(ERROR_CODES).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`)].join('\n');
}

function closeTable(): string {
  return [
    '| code | name | meaning | sent by | SessionKeeper |',
    '|---|---|---|---|---|',
    ...CLOSE_CODES.map((r) => `| ${r.code} | \`${r.name}\` | ${r.meaning} | ${r.sentBy} | ${r.reopen ? 'reopens' : 'stops'} |`),
  ].join('\n');
}

describe('README shows both tables as the code has them', () => {
  const file = path.join(ROOT, 'README.md');
  const sections = { 'error-codes': errorTable(), 'close-codes': closeTable() };

  it.each(Object.keys(sections) as Array<keyof typeof sections>)('%s', (name) => {
    const readme = readFileSync(file, 'utf8');
    const block = new RegExp(`(<!-- ${name}:start -->)([\\s\\S]*?)(<!-- ${name}:end -->)`);
    const wanted = `\n${sections[name]}\n`;
    expect(block.test(readme), `README.md has <!-- ${name}:start --> ... <!-- ${name}:end -->`).toBe(true);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(file, readme.replace(block, (_m, start: string, _old: string, end: string) => start + wanted + end));
    else expect(block.exec(readme)![2]).toBe(wanted);
  });
});
