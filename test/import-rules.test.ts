// The layering, asserted so it cannot rot silently: who may import whom, who may touch `ws`
// internals, and no import cycles. Imports are read from the source text (static, `export … from`
// and dynamic `import()`), type-only imports included: a type cycle is still a cycle for a reader.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '..');
const sources = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: repo, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && !f.startsWith('test/') && !f.startsWith('scratch/'))
  .filter((f) => {
    try {
      readFileSync(path.join(repo, f));
      return true;
    } catch {
      return false; // deleted in the work tree
    }
  });

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

/** file → the repo files it imports (relative specifiers only). */
const graph = new Map<string, string[]>(
  sources.map((file) => {
    const text = readFileSync(path.join(repo, file), 'utf8');
    const targets = [...text.matchAll(IMPORT)]
      .map((m) => m[1] ?? m[2] ?? m[3]!)
      .filter((s) => s.startsWith('.'))
      .map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)).replace(/\.js$/, '.ts'));
    return [file, targets];
  }),
);

const topOf = (file: string) => file.split('/')[0]!;

/** Where each top-level folder may import from (besides itself and packages). */
const ALLOWED: Record<string, (target: string) => boolean> = {
  lib: () => false,
  backend: (t) => topOf(t) === 'lib',
  client: (t) => topOf(t) === 'lib',
  bench: (t) => ['lib', 'client'].includes(topOf(t)) || t === 'gateway/harness.ts',
  scripts: (t) => ['lib', 'client'].includes(topOf(t)) || t === 'gateway/harness.ts',
};

describe('import rules', () => {
  it('reads a plausible graph (the rules below are not vacuous)', () => {
    expect(graph.get('backend/server.ts')).toContain('lib/ws-h2-adapter.ts');
    expect(graph.get('bench/environment.ts')).toContain('gateway/harness.ts');
    expect(graph.size).toBeGreaterThan(80);
  });

  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    it(`${folder}/ imports only what its layer may`, () => {
      const bad = [...graph]
        .filter(([file]) => topOf(file) === folder)
        .flatMap(([file, targets]) => targets.filter((t) => topOf(t) !== folder && !allowed(t)).map((t) => `${file} → ${t}`));
      expect(bad).toEqual([]);
    });
  }

  it('the Envoy config check (gateway/envoy/check/) is a tool: nothing outside it imports it', () => {
    const inCheck = (f: string) => f.startsWith('gateway/envoy/check/');
    expect([...graph.keys()].filter(inCheck).length).toBeGreaterThan(0);
    const bad = [...graph].filter(([file]) => !inCheck(file)).flatMap(([file, targets]) => targets.filter(inCheck).map((t) => `${file} → ${t}`));
    expect(bad).toEqual([]);
  });

  it('only lib/ws-h2-adapter.ts touches ws internals', () => {
    const internals = /\._(isServer|protocol|bufferedAmount|receiver|sender|socket|readyState)\b|\bsetSocket\(/;
    const users = [...graph.keys()].filter((f) => f !== 'lib/ws-h2-adapter.ts' && internals.test(readFileSync(path.join(repo, f), 'utf8')));
    expect(users).toEqual([]);
  });

  it('has no import cycles', () => {
    // Tarjan's strongly connected components: any component of more than one file is a cycle.
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    let next = 0;
    const visit = (v: string): void => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue;
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1) cycles.push(component.sort());
      }
    };
    for (const v of graph.keys()) if (!index.has(v)) visit(v);
    expect(cycles).toEqual([]);
  });
});
