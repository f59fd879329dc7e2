// A config document as Envoy sees it, before it meets the protos.
//
// Envoy does not read YAML into a message directly: it turns the YAML into a google.protobuf.Value
// with yaml-cpp (source/common/protobuf/utility.cc, parseYamlNode) and then parses that as proto3
// JSON. The scalar rules of that first step decide what a field receives, so they are reproduced
// here instead of using a YAML 1.2 schema:
//   - quoted and block scalars are strings, always;
//   - plain `~`, `null`, `Null`, `NULL` and empty values are null;
//   - plain y/yes/true/on and n/no/false/off (all-lower, all-upper or Capitalised) are booleans;
//   - plain integers (decimal, 0x hex, leading-0 octal) are numbers within int32, decimal strings
//     beyond it (proto3 JSON accepts strings for 64-bit integers);
//   - every other plain scalar, floats included, is a string (proto3 JSON parses "1.5" into a double).
//   - map keys are strings; keys tagged `!ignore` are dropped (Envoy's idiom for YAML anchors).
// Plain JS values (xDS resources built in code) go through `fromJs` into the same shape.

import { Alias, isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar, type Document, type Node } from 'yaml';

export interface Pos {
  line: number;
  col: number;
}

export type YNode =
  | { kind: 'null'; pos?: Pos }
  | { kind: 'bool'; value: boolean; text: string; pos?: Pos }
  | { kind: 'number'; value: number; text: string; pos?: Pos }
  /** `quoted`: written as a quoted/block scalar (or a JS string), not a plain YAML scalar. */
  | { kind: 'string'; value: string; quoted: boolean; pos?: Pos }
  | { kind: 'list'; items: YNode[]; pos?: Pos }
  | { kind: 'map'; entries: YEntry[]; pos?: Pos };

export interface YEntry {
  key: string;
  value: YNode;
  pos?: Pos;
}

export interface YamlIssue {
  message: string;
  /** YAML path where it happened ('' for the document). */
  path: string;
  pos?: Pos;
}

export interface ParsedYaml {
  node: YNode | undefined;
  /** YAML syntax errors and structural problems Envoy would reject. */
  errors: YamlIssue[];
  /** Things Envoy accepts but that are probably mistakes (duplicate keys: the last one wins). */
  warnings: YamlIssue[];
}

export type Seg = string | number;

/** `a.b[0]["dotted.key"].c` */
export function formatPath(segs: readonly Seg[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_@][A-Za-z0-9_@-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

const NULLS = new Set(['~', 'null', 'Null', 'NULL', '']);
const TRUE_NAMES = ['y', 'yes', 'true', 'on'];
const FALSE_NAMES = ['n', 'no', 'false', 'off'];
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** yaml-cpp's convert<bool>: only all-lower, all-upper or first-upper-rest-lower spellings count. */
function yamlCppBool(s: string): boolean | undefined {
  const flexible = s === s.toLowerCase() || s === s.toUpperCase() || s === s[0]!.toUpperCase() + s.slice(1).toLowerCase();
  if (!s || !flexible) return undefined;
  const lower = s.toLowerCase();
  if (TRUE_NAMES.includes(lower)) return true;
  if (FALSE_NAMES.includes(lower)) return false;
  return undefined;
}

/** yaml-cpp's convert<int64_t>: a C++ stream with base auto-detection (0x hex, leading-0 octal). */
function yamlCppInt64(s: string): bigint | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s.trimEnd());
  if (!m) return undefined;
  const digits = m[2]!;
  let v: bigint;
  if (/^0[xX]/.test(digits)) v = BigInt(digits);
  else if (digits.length > 1 && digits.startsWith('0')) v = BigInt(`0o${digits.slice(1)}`);
  else v = BigInt(digits);
  if (m[1] === '-') v = -v;
  if (v < INT64_MIN || v > INT64_MAX) return undefined;
  return v;
}

/** What Envoy's parseYamlNode makes of one scalar. */
function envoyScalar(text: string, plain: boolean, pos?: Pos): YNode {
  if (!plain) return { kind: 'string', value: text, quoted: true, pos };
  if (NULLS.has(text)) return { kind: 'null', pos };
  const b = yamlCppBool(text);
  if (b !== undefined) return { kind: 'bool', value: b, text, pos };
  const i = yamlCppInt64(text);
  if (i !== undefined) {
    if (i >= BigInt(INT32_MIN) && i <= BigInt(INT32_MAX)) return { kind: 'number', value: Number(i), text, pos };
    return { kind: 'string', value: i.toString(), quoted: false, pos };
  }
  return { kind: 'string', value: text, quoted: false, pos };
}

/**
 * Parse YAML text the way Envoy does. Only the first document counts (a second one is reported);
 * YAML syntax errors are returned, not thrown.
 */
export function parseEnvoyYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const errors: ParsedYaml['errors'] = [];
  const warnings: ParsedYaml['warnings'] = [];
  const docs = parseAllDocuments(text, {
    lineCounter,
    // Every scalar stays a string; the yaml-cpp rules above decide what it becomes.
    schema: 'failsafe',
    uniqueKeys: false,
    merge: false,
    customTags: [{ tag: '!ignore', resolve: (s: string) => s }],
    prettyErrors: false,
  });
  const at = (offset: number | undefined): Pos | undefined => {
    if (offset === undefined) return undefined;
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col };
  };
  const list = Array.isArray(docs) ? docs : [];
  if (list.length === 0) return { node: undefined, errors: [{ message: 'empty YAML document', path: '' }], warnings };
  if (list.length > 1) {
    errors.push({ message: `${list.length} YAML documents in one file; Envoy reads one`, path: '', pos: at(list[1]!.range[0]) });
  }
  const doc = list[0]!;
  for (const e of doc.errors) errors.push({ message: `YAML: ${e.message.split('\n')[0]}`, path: '', pos: at(e.pos[0]) });
  if (errors.length > 0 && !doc.contents) return { node: undefined, errors, warnings };

  const seen = new Set<Node>();
  const convert = (n: Node | null | undefined, d: Document.Parsed, segs: Seg[]): YNode => {
    const path = formatPath(segs);
    if (n == null) return { kind: 'null' };
    if (isAlias(n)) {
      const target = (n as Alias).resolve(d);
      if (!target) {
        errors.push({ message: `YAML: unresolved alias *${(n as Alias).source}`, path, pos: at(n.range?.[0]) });
        return { kind: 'null', pos: at(n.range?.[0]) };
      }
      if (seen.has(target as Node)) {
        errors.push({ message: 'YAML: recursive alias', path, pos: at(n.range?.[0]) });
        return { kind: 'null' };
      }
      seen.add(target as Node);
      const r = convert(target as Node, d, segs);
      seen.delete(target as Node);
      return r;
    }
    const pos = at(n.range?.[0]);
    if (isScalar(n)) {
      const s = n as Scalar;
      const value = s.value == null ? '' : String(s.value);
      return envoyScalar(value, s.type === Scalar.PLAIN || s.type === undefined, pos);
    }
    if (isSeq(n)) return { kind: 'list', items: n.items.map((item, i) => convert(item as Node, d, [...segs, i])), pos };
    if (isMap(n)) {
      const entries: YEntry[] = [];
      const index = new Map<string, number>();
      for (const pair of n.items) {
        const k = pair.key as Node | null;
        const kpos = at(k?.range?.[0]);
        if (k && isScalar(k) && k.tag === '!ignore') continue;
        let key: string;
        if (k == null) key = '';
        else if (isScalar(k)) key = k.value == null ? '' : String(k.value);
        else if (isAlias(k)) {
          const t = (k as Alias).resolve(d);
          if (t && isScalar(t)) key = String(t.value ?? '');
          else {
            errors.push({ message: 'YAML: a map key must be a scalar', path, pos: kpos });
            continue;
          }
        } else {
          errors.push({ message: 'YAML: a map key must be a scalar', path, pos: kpos });
          continue;
        }
        const value = convert(pair.value as Node | null, d, [...segs, key]);
        const prev = index.get(key);
        if (prev !== undefined) {
          warnings.push({ message: `duplicate key "${key}": Envoy keeps the last one`, path: formatPath([...segs, key]), pos: kpos });
          entries[prev] = { key, value, pos: kpos };
        } else {
          index.set(key, entries.length);
          entries.push({ key, value, pos: kpos });
        }
      }
      return { kind: 'map', entries, pos };
    }
    errors.push({ message: 'YAML: unsupported node', path, pos });
    return { kind: 'null', pos };
  };
  const node = convert(doc.contents as Node | null, doc, []);
  return { node, errors, warnings };
}

/** A plain JS value (e.g. an xDS resource built in code, or JSON) as a YNode. */
export function fromJs(value: unknown): YNode {
  if (value === null || value === undefined) return { kind: 'null' };
  if (typeof value === 'boolean') return { kind: 'bool', value, text: String(value) };
  if (typeof value === 'number') return { kind: 'number', value, text: String(value) };
  if (typeof value === 'bigint') return { kind: 'string', value: value.toString(), quoted: true };
  if (typeof value === 'string') return { kind: 'string', value, quoted: true };
  if (value instanceof Uint8Array) return { kind: 'string', value: Buffer.from(value).toString('base64'), quoted: true };
  if (Array.isArray(value)) return { kind: 'list', items: value.map(fromJs) };
  if (typeof value === 'object') {
    // Long (protobufjs 64-bit integers) and similar: use their decimal string.
    const o = value as Record<string, unknown>;
    if ('low' in o && 'high' in o && typeof o.toString === 'function' && o.toString !== Object.prototype.toString) {
      return { kind: 'string', value: String(o), quoted: true };
    }
    return { kind: 'map', entries: Object.entries(o).filter(([, v]) => v !== undefined).map(([key, v]) => ({ key, value: fromJs(v) })) };
  }
  return { kind: 'string', value: String(value), quoted: true };
}

/**
 * The proto3 JSON value Envoy hands to protobuf's JSON parser for this node. `replace` swaps given
 * nodes for other values (the validator uses it to spell case-insensitive enum names canonically).
 */
export function toJson(node: YNode, replace?: ReadonlyMap<YNode, unknown>): unknown {
  if (replace?.has(node)) return replace.get(node);
  switch (node.kind) {
    case 'null':
      return null;
    case 'bool':
    case 'number':
    case 'string':
      return node.value;
    case 'list':
      return node.items.map((i) => toJson(i, replace));
    case 'map':
      return Object.fromEntries(node.entries.map((e) => [e.key, toJson(e.value, replace)]));
  }
}
