// The partial check `npm run envoy:check` falls back to when no Envoy binary is installed. The
// authority on an Envoy config is `envoy --mode validate` (cli.ts runs it whenever it can); this
// only catches, with the YAML line and path of each, the mistakes Envoy's first step (YAML → proto3
// JSON → Bootstrap) would reject:
//   YAML syntax · unknown field · wrong JSON type · unknown enum value · unknown @type in an Any
// It does not check protoc-gen-validate rules (ranges, required fields), oneofs, references between
// resources (a route naming a missing cluster), files named in the config, or anything Envoy checks
// when it builds its listeners and clusters. When in doubt it accepts: Envoy has the last word.
//
// The types come from Envoy's v3 .proto files that ship inside @grpc/grpc-js-xds (deps/), loaded
// with protobufjs. Files importing protos the package does not ship (OpenCensus, OpenTelemetry,
// Prometheus) are left out; an @type from one of them is reported as not checkable here.
// Nothing in the running gateway imports this (test/import-rules.test.ts holds it to that).

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, type Document, type Node } from 'yaml';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

export interface OfflineProblem {
  /** YAML path, e.g. `static_resources.clusters[0].lb_policy`; '' is the document. */
  path: string;
  message: string;
  line?: number;
  col?: number;
}

interface EnvoyProtos {
  root: protobuf.Root;
  /** Message names declared in files left out because an import is not shipped. */
  excluded: Set<string>;
  files: number;
}

let cached: EnvoyProtos | undefined;

const IMPORT_RE = /^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm;

/** Every v3 file of Envoy's API (plus what they import), from the copies in @grpc/grpc-js-xds. */
export function loadEnvoyProtos(): EnvoyProtos {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let deps: string;
  try {
    deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  } catch (err) {
    throw new Error('cannot find @grpc/grpc-js-xds, which ships the Envoy protos; run npm ci', { cause: err });
  }
  const roots = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((r) => path.join(deps, r));
  const descriptor = path.join(path.dirname(require.resolve('protobufjs/package.json')), 'google/protobuf/descriptor.proto');
  const bundled = (protobuf as unknown as { common: Record<string, unknown> }).common;
  const locate = (rel: string): string | undefined =>
    rel === 'google/protobuf/descriptor.proto' ? descriptor : roots.map((r) => path.join(r, rel)).find((p) => fs.existsSync(p));

  // protobufjs fails the whole load on one unresolvable import, so files whose imports are not all
  // shipped are found first and left out.
  const text = new Map<string, string>();
  const loadable = new Map<string, boolean>();
  const ok = (rel: string, seen = new Set<string>()): boolean => {
    if (loadable.has(rel) || seen.has(rel)) return loadable.get(rel) ?? true;
    seen.add(rel);
    const abs = locate(rel);
    const src = abs ? fs.readFileSync(abs, 'utf8') : '';
    text.set(rel, src);
    const result = !!abs && [...src.matchAll(IMPORT_RE)].every((m) => Object.hasOwn(bundled, m[1]!) || ok(m[1]!, seen));
    loadable.set(rel, result);
    return result;
  };
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.proto') ? [path.join(dir, e.name)] : []));
  const files: string[] = [];
  const excluded = new Set<string>();
  for (const rel of walk(path.join(roots[0]!, 'envoy')).map((f) => path.relative(roots[0]!, f).split(path.sep).join('/'))) {
    if (!/\/v3(alpha)?\//.test(rel)) continue; // v2 is Envoy's removed API
    if (ok(rel)) files.push(rel);
    else {
      const src = text.get(rel) ?? '';
      const pkg = /^\s*package\s+([\w.]+)\s*;/m.exec(src)?.[1];
      for (const m of src.matchAll(/^message\s+(\w+)\s*\{/gm)) excluded.add(`${pkg}.${m[1]}`);
    }
  }
  for (const extra of ['xds/type/v3/typed_struct.proto', 'udpa/type/v1/typed_struct.proto']) if (ok(extra)) files.push(extra);

  const root = new protobuf.Root();
  // protobufjs uses its bundled google/protobuf/* when resolvePath returns the bare name.
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : (locate(target) ?? target));
  try {
    root.loadSync(files, { keepCase: true });
    root.resolveAll();
  } catch (err) {
    throw new Error(`cannot load the Envoy v3 protos from ${deps}: ${(err as Error).message}`, { cause: err });
  }
  cached = { root, excluded, files: files.length };
  return cached;
}

// ---------------------------------------------------------------------------------------------

type Seg = string | number;
const INTS = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS: Record<string, string> = {
  DoubleValue: 'double', FloatValue: 'float', Int64Value: 'int64', UInt64Value: 'uint64', Int32Value: 'int32',
  UInt32Value: 'uint32', BoolValue: 'bool', StringValue: 'string', BytesValue: 'bytes',
};
const NUMBER_RE = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^-?Infinity$|^NaN$/;
const camel = (s: string) => s.replace(/_+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());

function formatPath(segs: readonly Seg[]): string {
  return segs.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[${s}]` : /^[\w@-]+$/.test(s) ? (out ? `${out}.${s}` : s) : `${out}[${JSON.stringify(s)}]`), '');
}

class Walk {
  readonly problems: OfflineProblem[] = [];
  readonly notes: string[] = [];
  constructor(
    private readonly protos: EnvoyProtos,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  problem(segs: readonly Seg[], node: Node | null | undefined, message: string): void {
    const at = node?.range ? this.lines.linePos(node.range[0]) : undefined;
    this.problems.push({ path: formatPath(segs), message, ...(at && { line: at.line, col: at.col }) });
  }

  resolve(node: unknown): Node | null {
    return isAlias(node) ? ((node.resolve(this.doc) as Node | undefined) ?? null) : ((node as Node | null) ?? null);
  }

  message(t: protobuf.Type, raw: unknown, segs: Seg[], skip?: string): void {
    const node = this.resolve(raw);
    if (!node || (isScalar(node) && node.value === null)) return; // null: not set
    const name = t.fullName.slice(1);
    if (name.startsWith('google.protobuf.')) return this.wellKnown(name.slice(16), node, segs);
    if (!isMap(node)) return this.problem(segs, node, `expected an object (${name}), got ${this.describe(node)}`);
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key : undefined;
      if (!key || key.tag === '!ignore' || key.value === '<<' || key.value === skip) continue;
      const k = String(key.value);
      const field = (Object.hasOwn(t.fields, k) ? t.fields[k] : undefined) ?? t.fieldsArray.find((f) => (f.options?.json_name ?? camel(f.name)) === k);
      if (!field) this.problem([...segs, k], key, `unknown field "${k}" (not in ${name})`);
      else this.field(field, pair.value, [...segs, k]);
    }
  }

  field(f: protobuf.Field, raw: unknown, segs: Seg[]): void {
    const node = this.resolve(raw);
    if (f instanceof protobuf.MapField) {
      if (!node || (isScalar(node) && node.value === null)) return;
      if (!isMap(node)) return this.problem(segs, node, `expected an object (map of ${f.type}), got ${this.describe(node)}`);
      for (const pair of node.items) this.value(f, pair.value, [...segs, String(isScalar(pair.key) ? pair.key.value : '?')]);
    } else if (f.repeated && isSeq(node)) node.items.forEach((item, i) => this.value(f, item, [...segs, i]));
    else this.value(f, node, segs); // a single value where a list goes: Envoy's legacy JSON takes it
  }

  value(f: protobuf.Field, raw: unknown, segs: Seg[]): void {
    f.resolve();
    if (f.resolvedType instanceof protobuf.Type) return this.message(f.resolvedType, raw, segs);
    const node = this.resolve(raw);
    if (f.resolvedType instanceof protobuf.Enum) return this.enumValue(f.resolvedType, node, segs);
    this.scalar(f.type, node, segs);
  }

  enumValue(e: protobuf.Enum, node: Node | null, segs: Seg[]): void {
    if (!isScalar(node) || node.value === null || Number.isInteger(node.value)) return;
    const v = String(node.value);
    if (typeof node.value !== 'string' || !Object.keys(e.values).some((n) => n.toLowerCase() === v.toLowerCase())) {
      this.problem(segs, node, `unknown enum value "${v}" for ${e.fullName.slice(1)}: one of ${Object.keys(e.values).join(', ')}`);
    }
  }

  scalar(type: string, node: Node | null, segs: Seg[]): void {
    if (isScalar(node) && node.value === null) return;
    const v = isScalar(node) ? node.value : undefined;
    const plain = isScalar(node) && node.type === Scalar.PLAIN;
    let bad: boolean;
    if (INTS.has(type) || type === 'double' || type === 'float') {
      const ok = typeof v === 'number' || (typeof v === 'string' && NUMBER_RE.test(v.trim()));
      bad = !ok || (INTS.has(type) && !Number.isInteger(Number(v)));
    } else if (type === 'bool') bad = typeof v !== 'boolean' && !(typeof v === 'string' && /^(true|false)$/i.test(v));
    // yaml-cpp reads a plain integer or yes/no/true/false as a number or bool, which a string field refuses.
    else bad = !isScalar(node) || (plain && (typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v))));
    const hint = type === 'string' && plain && v !== undefined ? ' (quote it)' : '';
    if (bad) this.problem(segs, node, `expected ${INTS.has(type) ? `an integer (${type})` : type === 'string' || type === 'bytes' ? 'a string' : `a ${type}`}, got ${this.describe(node)}${hint}`);
  }

  wellKnown(name: string, node: Node, segs: Seg[]): void {
    const wrapped = WRAPPERS[name];
    if (wrapped) return isMap(node) ? undefined : this.scalar(wrapped, node, segs); // {value: …}: legacy form, accepted
    const v = isScalar(node) ? node.value : undefined;
    const expect = (ok: boolean, what: string) => ok || this.problem(segs, node, `expected ${what} (google.protobuf.${name}), got ${this.describe(node)}`);
    if (name === 'Duration') expect(isMap(node) || (typeof v === 'string' && /^-?\d+(\.\d{1,9})?s$/.test(v)), 'a duration string like "5s" or "0.25s"');
    else if (name === 'Timestamp' || name === 'FieldMask') expect(isMap(node) || typeof v === 'string', 'a string');
    else if (name === 'Struct') expect(isMap(node), 'an object');
    else if (name === 'ListValue') expect(isSeq(node), 'a list');
    else if (name === 'Any') this.any(node, segs);
  }

  any(node: Node, segs: Seg[]): void {
    if (!isMap(node)) return void this.problem(segs, node, `expected an object with "@type", got ${this.describe(node)}`);
    const typeNode = this.resolve(node.get('@type', true));
    if (!typeNode) return node.items.length ? this.problem(segs, node, 'missing "@type" (a typed_config names its message type)') : undefined;
    const url = isScalar(typeNode) ? String(typeNode.value) : '';
    const typeName = url.replace(/^.*\//, '');
    const t = typeName ? this.protos.root.lookup(typeName) : null;
    if (t instanceof protobuf.Type && t.fullName === `.${typeName}`) {
      if (!typeName.startsWith('google.protobuf.') || typeName === 'google.protobuf.Empty') return this.message(t, node, segs, '@type');
      const value = node.get('value', true);
      return value === undefined ? undefined : this.message(t, value, [...segs, 'value']);
    }
    if (this.protos.excluded.has(typeName)) this.notes.push(`${formatPath([...segs, '@type'])}: ${typeName} not checked (its proto imports files @grpc/grpc-js-xds does not ship)`);
    else this.problem([...segs, '@type'], typeNode, `unknown @type "${url}": no such message in Envoy's v3 API`);
  }

  describe(node: Node | null): string {
    if (isMap(node)) return 'an object';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) return `${typeof node.value} ${JSON.stringify(node.value)}`;
    return 'nothing';
  }
}

/** Check Envoy YAML (or JSON) text as `typeName` (a Bootstrap by default). */
export function checkEnvoyYamlOffline(text: string, typeName = BOOTSTRAP_TYPE): { problems: OfflineProblem[]; notes: string[] } {
  const lines = new LineCounter();
  // YAML 1.1 scalars (yes/no booleans, 010 octal), as yaml-cpp reads them; duplicate keys are Envoy's business.
  const doc = parseDocument(text, { version: '1.1', lineCounter: lines, uniqueKeys: false, customTags: [{ tag: '!ignore', resolve: (s: string) => s }] });
  if (doc.errors.length > 0) {
    return { problems: doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, line: e.linePos?.[0].line, col: e.linePos?.[0].col })), notes: [] };
  }
  const protos = loadEnvoyProtos();
  const t = protos.root.lookup(typeName);
  if (!(t instanceof protobuf.Type)) throw new Error(`no message type "${typeName}" in the Envoy v3 API protos`);
  const walk = new Walk(protos, doc, lines);
  walk.message(t, doc.contents, []);
  return { problems: walk.problems, notes: walk.notes };
}

/** `file:line:col: path: message` */
export function formatOfflineProblem(p: OfflineProblem, file: string): string {
  return `${file}${p.line ? `:${p.line}:${p.col}` : ''}: ${p.path || '(document)'}: ${p.message}`;
}
