// Checks Envoy configuration against Envoy's own v3 API definitions, without an Envoy binary.
//
// What Envoy does with a YAML bootstrap: yaml-cpp → google.protobuf.Value (yaml-node.ts) → proto3
// JSON parse into envoy.config.bootstrap.v3.Bootstrap (unknown fields rejected, enums matched
// case-insensitively) → protoc-gen-validate rules → each typed_config unpacked by its @type and
// validated again when its extension is created. This module walks the document against the
// loaded protos (proto-root.ts) and reports, with the YAML path of each one, every:
//   unknown field · wrong JSON type · bad enum value · malformed Duration/Timestamp/bytes ·
//   two members of one oneof · Any with a missing/unknown @type (resolved and checked recursively,
//   TypedStruct included) · PGV rule violation (pgv.ts) · use of a field Envoy makes fatal by default.
// Deprecated fields, work-in-progress APIs, quoted numbers and duplicate keys are warnings.
//
// Envoy calls protobuf's public JSON API, which parses with `allow_legacy_syntax` on (protobuf
// json.cc: "TODO: Drop this setting"). That mode quietly accepts a few wrong shapes: "true" for a
// bool, a single value where a list goes, nested lists (flattened), null list items, the object
// form of Duration/Timestamp/FieldMask/wrappers ({seconds: 5}, {value: 100}), the same field given
// twice. Those are reported as `legacy_json` warnings, not errors: Envoy takes them today, but they
// are wrong JSON for the type and may stop working (`--strict` in the CLI makes them fail).
//
// `validateEnvoyMessage(typeName, value)` takes any message type by full name and a plain JS value
// or parsed YAML, so xDS resources (Listener, Cluster, DiscoveryResponse, …) use the same check.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import protojson from 'protobufjs/ext/protojson.js';
import { logger } from '../../lib/log.js';
import { EnvoyConfigError } from './errors.js';
import { findEnvoyBinary } from './binary.js';
import { loadEnvoyApi, type EnvoyApi } from './proto-root.js';
import {
  checkAnyRules,
  checkDurationRules,
  checkScalarRules,
  checkTimestampRules,
  rulesFrom,
  type RuleSink,
  type Rules,
  type ScalarValue,
} from './pgv.js';
import { formatPath, fromJs, parseEnvoyYaml, toJson, type Pos, type Seg, type YNode } from './yaml-node.js';

export { EnvoyConfigError } from './errors.js';

const log = logger('envoy-validate');

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

export type ProblemKind =
  | 'yaml'
  | 'unknown_field'
  | 'duplicate_field'
  | 'wrong_type'
  | 'bad_enum'
  | 'bad_value'
  | 'unknown_type'
  | 'unverifiable_type'
  | 'oneof'
  | 'constraint'
  | 'disallowed'
  | 'deprecated'
  | 'work_in_progress'
  | 'quoted_number'
  | 'duplicate_key'
  /** Accepted by Envoy only through protobuf's legacy JSON leniency. */
  | 'legacy_json'
  /** A name that must refer to something defined elsewhere in the bootstrap (route → cluster). */
  | 'reference'
  /** protobufjs' independent proto3 JSON parser disagrees (CLI second opinion). */
  | 'proto3_json';

export interface EnvoyProblem {
  severity: 'error' | 'warning';
  kind: ProblemKind;
  /** YAML path, e.g. `static_resources.listeners[0].address.socket_address.port_value`; '' is the root. */
  path: string;
  message: string;
  pos?: Pos;
}

export interface EnvoyValidationResult {
  ok: boolean;
  /** Message type the document was checked against. */
  type: string;
  errors: EnvoyProblem[];
  warnings: EnvoyProblem[];
  /** Every @type (Any / TypedStruct) resolved and checked, in order of first appearance. */
  typesChecked: string[];
  /** PGV rules met on the way that this checker does not enforce. */
  unenforcedRules: string[];
  /**
   * The document as the proto3 JSON Envoy's parser receives it (after Envoy's YAML conversion),
   * with enum names spelt canonically. Undefined when the YAML itself did not parse.
   */
  json?: unknown;
  file?: string;
}

export interface ValidateOptions {
  /** The value came from YAML (enables YAML-only warnings such as quoted numbers). */
  fromYaml?: boolean;
}

/** `path: message`, prefixed with `file:line:col:` when known. */
export function formatProblem(p: EnvoyProblem, file?: string): string {
  const where = file ? `${file}${p.pos ? `:${p.pos.line}:${p.pos.col}` : ''}: ` : p.pos ? `line ${p.pos.line}: ` : '';
  const tag = p.severity === 'warning' ? 'warning: ' : '';
  return `${where}${tag}${p.path || '(root)'}: ${p.message}`;
}

// ---------------------------------------------------------------------------------------------
// Type metadata caches

type PType = protobuf.Type;
type PEnum = protobuf.Enum;
type PField = protobuf.Field;

const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};
/** Types whose proto3 JSON form is not an object of their fields (an Any holding one uses `value`). */
const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  '.google.protobuf.Duration',
  '.google.protobuf.Timestamp',
  '.google.protobuf.FieldMask',
  '.google.protobuf.Struct',
  '.google.protobuf.Value',
  '.google.protobuf.ListValue',
  '.google.protobuf.Any',
]);
const TYPED_STRUCTS = new Set(['.xds.type.v3.TypedStruct', '.udpa.type.v1.TypedStruct']);
/** Special-JSON types that protobuf's legacy syntax also accepts as a plain object of their fields. */
const LEGACY_OBJECT_FORM = new Set([
  ...Object.keys(WRAPPERS),
  '.google.protobuf.Duration',
  '.google.protobuf.Timestamp',
  '.google.protobuf.FieldMask',
  '.google.protobuf.ListValue',
]);
/** absl::SimpleAtob, which legacy syntax uses for quoted bools. */
const QUOTED_BOOLS: Record<string, boolean> = { true: true, t: true, yes: true, y: true, '1': true, false: false, f: false, no: false, n: false, '0': false };

const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
const SCALARS = new Set([...Object.keys(INT_RANGES), 'double', 'float', 'bool', 'string', 'bytes']);

const jsonName = (name: string): string => name.replace(/_+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());

interface TypeInfo {
  byKey: Map<string, PField>;
  requiredOneofs: protobuf.OneOf[];
  pgvDisabled: boolean;
  wip: boolean;
}
const typeInfo = new WeakMap<PType, TypeInfo>();
function info(t: PType): TypeInfo {
  let i = typeInfo.get(t);
  if (!i) {
    const byKey = new Map<string, PField>();
    for (const f of t.fieldsArray) {
      byKey.set(f.name, f);
      const jn = (f.options?.json_name as string | undefined) ?? jsonName(f.name);
      if (!byKey.has(jn)) byKey.set(jn, f);
    }
    const requiredOneofs = t.oneofsArray.filter((o) => o.options?.['(validate.required)'] === true);
    const pgvDisabled = t.options?.['(validate.disabled)'] === true || t.options?.['(validate.ignored)'] === true;
    // Message-level status only: protobufjs merges the file options of every file of a package into
    // one namespace, so a file-level work_in_progress would mark its neighbours too (envoy.type.v3
    // has such a file, and Percent is stable).
    const wip = t.options?.['(xds.annotations.v3.message_status).work_in_progress'] === true;
    i = { byKey, requiredOneofs, pgvDisabled, wip };
    typeInfo.set(t, i);
  }
  return i;
}

const fieldRules = new WeakMap<PField, Rules | null>();
function rulesOf(f: PField): Rules | undefined {
  if (!fieldRules.has(f)) fieldRules.set(f, rulesFrom(f.parsedOptions as Record<string, unknown>[] | undefined) ?? null);
  return fieldRules.get(f) ?? undefined;
}

/** Every field name in the API → the messages that declare it (for "wrong message" hints). */
let fieldOwners: Map<string, string[]> | undefined;
let allTypeNames: string[] | undefined;
function indexApi(api: EnvoyApi): void {
  if (fieldOwners) return;
  fieldOwners = new Map();
  allTypeNames = [];
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Type) {
        allTypeNames!.push(child.fullName.slice(1));
        for (const f of child.fieldsArray) {
          const list = fieldOwners!.get(f.name) ?? [];
          list.push(child.fullName.slice(1));
          fieldOwners!.set(f.name, list);
        }
      }
      if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) visit(child as protobuf.NamespaceBase);
    }
  };
  visit(api.root);
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function closest(word: string, candidates: Iterable<string>, max = 3): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const limit = Math.min(max, Math.max(1, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD && d <= limit) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// The walk

function describe(n: YNode): string {
  switch (n.kind) {
    case 'null':
      return 'null';
    case 'bool':
      return n.text === String(n.value) ? `bool ${n.value}` : `bool ${n.value} (YAML "${n.text}")`;
    case 'number':
      return `number ${n.text}`;
    case 'string':
      return `string ${JSON.stringify(n.value.length > 60 ? `${n.value.slice(0, 57)}...` : n.value)}`;
    case 'list':
      return 'a list';
    case 'map':
      return 'an object';
  }
}

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const MAX_DURATION_S = 315_576_000_000n;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$/;

class Walker {
  readonly errors: EnvoyProblem[] = [];
  readonly warnings: EnvoyProblem[] = [];
  readonly typesChecked: string[] = [];
  readonly unenforced = new Set<string>();
  /** Enum values matched case-insensitively → their canonical name (for `json`). */
  readonly enumCanon = new Map<YNode, unknown>();
  private depth = 0;

  constructor(
    readonly api: EnvoyApi,
    readonly opts: ValidateOptions,
  ) {}

  problem(severity: 'error' | 'warning', kind: ProblemKind, segs: readonly Seg[], message: string, pos?: Pos): void {
    (severity === 'error' ? this.errors : this.warnings).push({ severity, kind, path: formatPath(segs), message, pos });
  }

  sink(segs: readonly Seg[], pos: Pos | undefined, where: string): RuleSink {
    return {
      fail: (m) => this.problem('error', 'constraint', segs, `${m} (validate rule on ${where})`, pos),
      unenforced: (rule) => this.unenforced.add(`${where}: ${rule}`),
    };
  }

  // -- messages ---------------------------------------------------------------------------------

  message(t: PType, n: YNode, segs: Seg[], pgv: boolean): void {
    if (++this.depth > 200) {
      this.problem('error', 'bad_value', segs, 'nesting too deep (over 200 levels)', n.pos);
      this.depth--;
      return;
    }
    try {
      this.messageInner(t, n, segs, pgv);
    } finally {
      this.depth--;
    }
  }

  private messageInner(t: PType, n: YNode, segs: Seg[], pgv: boolean): void {
    const full = t.fullName;
    if (n.kind === 'null' && full !== '.google.protobuf.Value') return; // null = not set
    if (n.kind === 'map' && LEGACY_OBJECT_FORM.has(full)) {
      // Legacy syntax: these may be written as the plain message ({seconds: 5}, {value: 100}).
      const proper = WRAPPERS[full] ? `the plain value, e.g. ${String(segs.at(-1) ?? 'field')}: 100` : full === '.google.protobuf.Duration' ? 'a string like "5s"' : full === '.google.protobuf.ListValue' ? 'a list' : 'a string';
      this.problem('warning', 'legacy_json', segs, `${full.slice(1)} written as an object: Envoy accepts it (protobuf legacy JSON syntax), but its JSON form is ${proper}`, n.pos);
      this.fields(t, n.entries, segs, pgv, n.pos);
      return;
    }
    const wrapped = WRAPPERS[full];
    if (wrapped) {
      this.scalar(wrapped, n, segs);
      return;
    }
    switch (full) {
      case '.google.protobuf.Duration':
        this.duration(n, segs);
        return;
      case '.google.protobuf.Timestamp':
        if (n.kind !== 'string' || !TIMESTAMP_RE.test(n.value) || Number.isNaN(Date.parse(n.value))) {
          this.problem('error', 'wrong_type', segs, `expected an RFC 3339 timestamp string like "2024-01-01T00:00:00Z", got ${describe(n)}`, n.pos);
        }
        return;
      case '.google.protobuf.FieldMask':
        if (n.kind !== 'string') this.problem('error', 'wrong_type', segs, `expected a field mask string like "a.b,c", got ${describe(n)}`, n.pos);
        return;
      case '.google.protobuf.Value':
        return; // any JSON value
      case '.google.protobuf.Struct':
        if (n.kind !== 'map') this.problem('error', 'wrong_type', segs, `expected an object (google.protobuf.Struct), got ${describe(n)}`, n.pos);
        return;
      case '.google.protobuf.ListValue':
        if (n.kind !== 'list') this.problem('error', 'wrong_type', segs, `expected a list (google.protobuf.ListValue), got ${describe(n)}`, n.pos);
        return;
      case '.google.protobuf.Any':
        this.any(n, segs, pgv);
        return;
    }
    if (n.kind !== 'map') {
      this.problem('error', 'wrong_type', segs, `expected an object (${full.slice(1)}), got ${describe(n)}`, n.pos);
      return;
    }
    this.fields(t, n.entries, segs, pgv, n.pos);
    if (TYPED_STRUCTS.has(full)) this.typedStruct(n, segs, pgv);
  }

  /** The entries of an object checked as the fields of `t` (also used for the body of an Any). */
  fields(t: PType, entries: { key: string; value: YNode; pos?: Pos }[], segs: Seg[], pgv: boolean, pos: Pos | undefined, skipKeys: ReadonlySet<string> = new Set()): void {
    const ti = info(t);
    const typeName = t.fullName.slice(1);
    if (ti.wip) this.problem('warning', 'work_in_progress', segs, `${typeName} is marked work-in-progress: not covered by Envoy's stability or security guarantees`, pos);
    const doPgv = pgv && !ti.pgvDisabled;
    const set = new Map<PField, string>();
    const oneofSet = new Map<protobuf.OneOf, string>();
    for (const e of entries) {
      if (skipKeys.has(e.key)) continue;
      const here = [...segs, e.key];
      const f = ti.byKey.get(e.key);
      if (!f) {
        this.unknownField(t, e.key, here, e.pos ?? e.value.pos);
        continue;
      }
      // A real oneof (not proto3 `optional`'s synthetic one) allows one member, given once.
      const oneof = f.partOf && !f.partOf.name.startsWith('_') ? f.partOf : undefined;
      const prev = set.get(f);
      if (prev !== undefined && !oneof) {
        this.problem('warning', 'duplicate_field', here, `field given twice (as "${prev}" and "${e.key}"); Envoy (protobuf legacy JSON syntax) takes both, the last one wins`, e.pos);
      }
      set.set(f, e.key);
      const isNull = e.value.kind === 'null' && f.type !== 'google.protobuf.Value';
      if (oneof && !isNull) {
        const other = oneofSet.get(oneof);
        if (other !== undefined) {
          const same = ti.byKey.get(other) === f;
          this.problem(
            'error',
            same ? 'duplicate_field' : 'oneof',
            here,
            same ? `field given twice (as "${other}" and "${e.key}")` : `only one of oneof "${oneof.name}" may be set, but "${other}" is set too`,
            e.pos,
          );
        }
      }
      if (f.partOf && !isNull) oneofSet.set(f.partOf, e.key);
      if (!isNull) this.fieldAnnotations(f, here, e.pos);
      this.field(f, e.value, here, doPgv);
    }
    // Fields left out: Envoy flags an unset enum whose default value is deprecated, and PGV rules
    // bind proto3 scalars at their default value.
    for (const f of t.fieldsArray) {
      const given = set.get(f);
      const givenNode = given === undefined ? undefined : entries.find((e) => e.key === given)?.value;
      if (givenNode && givenNode.kind !== 'null') continue;
      if (f.resolvedType instanceof protobuf.Enum && !f.repeated && !f.map && !f.partOf) this.deprecatedDefault(f, f.resolvedType, [...segs, f.name], pos);
      const r = doPgv ? rulesOf(f) : undefined;
      if (!r) continue;
      const here = [...segs, f.name];
      const where = `${typeName}.${f.name}`;
      const sink = this.sink(here, pos, where);
      if (f.map) {
        if (r.map?.min_pairs !== undefined && Number(r.map.min_pairs) > 0 && !r.map.ignore_empty) sink.fail(`needs at least ${r.map.min_pairs} entries (missing)`);
      } else if (f.repeated) {
        if (r.repeated?.min_items !== undefined && Number(r.repeated.min_items) > 0 && !r.repeated.ignore_empty) sink.fail(`needs at least ${r.repeated.min_items} item(s) (missing)`);
      } else if (f.partOf) {
        // oneof members and proto3 `optional` fields are only checked when set
      } else if (r.message?.required || r.duration?.required || r.any?.required || r.timestamp?.required) {
        this.problem('error', 'constraint', here, `required field missing (validate rule on ${where})`, pos);
      } else if (SCALARS.has(f.type) || f.resolvedType instanceof protobuf.Enum) {
        const kind = f.resolvedType instanceof protobuf.Enum ? 'enum' : f.type;
        const dflt = defaultScalar(kind);
        const unsetSink: RuleSink = {
          fail: (m) => this.problem('error', 'constraint', here, `${m}; it is not set (validate rule on ${where})`, pos),
          unenforced: sink.unenforced,
        };
        checkScalarRules(kind, r[kind] as Rules | undefined, dflt, unsetSink, (v) => this.enumDefined(f.resolvedType as PEnum, v));
      }
    }
    for (const o of doPgv ? ti.requiredOneofs : []) {
      if (!oneofSet.has(o)) {
        const names = o.fieldsArray.map((f) => f.name);
        this.problem('error', 'constraint', segs, `one of ${names.join(', ')} is required (oneof "${o.name}" of ${typeName})`, pos);
      }
    }
  }

  private unknownField(t: PType, key: string, segs: Seg[], pos?: Pos): void {
    const ti = info(t);
    const names = [...ti.byKey.keys()];
    let msg = `unknown field (not in ${t.fullName.slice(1)})`;
    const near = closest(key, names);
    if (near) msg += `; did you mean "${near}"?`;
    else {
      indexApi(this.api);
      const owners = fieldOwners!.get(key) ?? fieldOwners!.get(key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      if (owners && owners.length > 0) {
        msg += `; "${key}" is a field of ${owners.slice(0, 3).join(', ')}${owners.length > 3 ? ` and ${owners.length - 3} more` : ''}`;
      }
    }
    this.problem('error', 'unknown_field', segs, msg, pos);
  }

  private deprecatedDefault(f: PField, e: PEnum, segs: Seg[], pos?: Pos): void {
    const name = Object.keys(e.values).find((k) => e.values[k] === 0);
    const vo = name === undefined ? undefined : e.valuesOptions?.[name];
    if (!vo?.deprecated) return;
    const what = `not set, so it defaults to ${e.fullName.slice(1)}.${name}, a deprecated value`;
    if (vo['(envoy.annotations.disallowed_by_default_enum)'] === true) {
      this.problem('error', 'disallowed', segs, `${what} that Envoy rejects by default; set it explicitly`, pos);
    } else this.problem('warning', 'deprecated', segs, `${what}; set it explicitly`, pos);
  }

  private fieldAnnotations(f: PField, segs: Seg[], pos?: Pos): void {
    const o = f.options ?? {};
    const where = `${(f.parent as PType).fullName.slice(1)}.${f.name}`;
    if (o['(envoy.annotations.disallowed_by_default)'] === true) {
      this.problem('error', 'disallowed', segs, `${where} is deprecated and fatal by default in Envoy`, pos);
    } else if (o.deprecated === true) {
      const since = o['(envoy.annotations.deprecated_at_minor_version)'];
      this.problem('warning', 'deprecated', segs, `${where} is deprecated${since ? ` (since API ${since})` : ''}; Envoy logs a warning and may reject it in a future release`, pos);
    }
    if (o['(xds.annotations.v3.field_status).work_in_progress'] === true) {
      this.problem('warning', 'work_in_progress', segs, `${where} is marked work-in-progress`, pos);
    }
  }

  // -- fields -----------------------------------------------------------------------------------

  private field(f: PField, n: YNode, segs: Seg[], pgv: boolean): void {
    const r = pgv ? rulesOf(f) : undefined;
    const where = `${(f.parent as PType).fullName.slice(1)}.${f.name}`;
    if (f.map) {
      if (n.kind === 'null') return;
      if (n.kind !== 'map') {
        this.problem('error', 'wrong_type', segs, `expected an object (map<${(f as unknown as protobuf.MapField).keyType}, ${f.type}>), got ${describe(n)}`, n.pos);
        return;
      }
      const keyType = (f as unknown as protobuf.MapField).keyType;
      for (const e of n.entries) {
        const here = [...segs, e.key];
        this.mapKey(keyType, e.key, here, e.pos, r?.map?.keys as Rules | undefined, where);
        if (e.value.kind === 'null' && f.type !== 'google.protobuf.Value') {
          // protobuf keeps the entry with a default value; almost certainly not what was meant.
          this.problem('warning', 'legacy_json', here, 'null map value: Envoy keeps the key with a default (empty) value', e.value.pos ?? e.pos);
          if (f.resolvedType instanceof protobuf.Type) this.singular(f, { kind: 'map', entries: [], pos: e.pos }, here, pgv, r?.map?.values as Rules | undefined);
          continue;
        }
        this.singular(f, e.value, here, pgv, r?.map?.values as Rules | undefined);
      }
      const mr = r?.map as Rules | undefined;
      if (mr && !(mr.ignore_empty && n.entries.length === 0)) {
        const sink = this.sink(segs, n.pos, where);
        if (mr.min_pairs !== undefined && n.entries.length < Number(mr.min_pairs)) sink.fail(`needs at least ${mr.min_pairs} entries`);
        if (mr.max_pairs !== undefined && n.entries.length > Number(mr.max_pairs)) sink.fail(`allows at most ${mr.max_pairs} entries`);
      }
      return;
    }
    if (f.repeated) {
      if (n.kind === 'null') return;
      const valueLike = f.type === 'google.protobuf.Value' || f.type === 'google.protobuf.ListValue';
      // Legacy syntax: a single value stands for a one-element list; lists inside the list are
      // flattened (except for Value/ListValue elements).
      let items: { node: YNode; segs: Seg[] }[];
      if (n.kind !== 'list') {
        this.problem('warning', 'legacy_json', segs, `expected a list of ${this.typeLabel(f)}, got ${describe(n)}; Envoy (protobuf legacy JSON syntax) takes it as a one-element list, but write it as a list`, n.pos);
        items = [{ node: n, segs }];
      } else {
        items = [];
        const flatten = (list: YNode & { kind: 'list' }, base: Seg[]) => {
          list.items.forEach((item, i) => {
            if (item.kind === 'list' && !valueLike) {
              this.problem('warning', 'legacy_json', [...base, i], 'a list inside a list: Envoy (protobuf legacy JSON syntax) flattens it into the outer list', item.pos);
              flatten(item, [...base, i]);
            } else items.push({ node: item, segs: [...base, i] });
          });
        };
        flatten(n, segs);
      }
      const seen: string[] = [];
      for (const { node: item, segs: here } of items) {
        if (item.kind === 'null' && !valueLike && f.type !== 'google.protobuf.NullValue') {
          this.problem('warning', 'legacy_json', here, 'null list item: Envoy (protobuf legacy JSON syntax) turns it into a default (empty) element', item.pos ?? n.pos);
          if (f.resolvedType instanceof protobuf.Type) this.singular(f, { kind: 'map', entries: [], pos: item.pos }, here, pgv, r?.repeated?.items as Rules | undefined);
          seen.push('null');
          continue;
        }
        this.singular(f, item, here, pgv, r?.repeated?.items as Rules | undefined);
        seen.push(JSON.stringify(plain(item)));
      }
      const rr = r?.repeated as Rules | undefined;
      if (rr && !(rr.ignore_empty && items.length === 0)) {
        const sink = this.sink(segs, n.pos, where);
        if (rr.min_items !== undefined && items.length < Number(rr.min_items)) sink.fail(`needs at least ${rr.min_items} item(s)`);
        if (rr.max_items !== undefined && items.length > Number(rr.max_items)) sink.fail(`allows at most ${rr.max_items} item(s)`);
        if (rr.unique && new Set(seen).size !== seen.length) sink.fail('items must be unique');
      }
      return;
    }
    this.singular(f, n, segs, pgv, r);
  }

  private typeLabel(f: PField): string {
    if (f.resolvedType instanceof protobuf.Type) return `objects (${f.resolvedType.fullName.slice(1)})`;
    if (f.resolvedType instanceof protobuf.Enum) return `${f.resolvedType.fullName.slice(1)} values`;
    return `${f.type} values`;
  }

  /** One value of field `f` (the field itself, a list item or a map value) with its rules. */
  private singular(f: PField, n: YNode, segs: Seg[], pgv: boolean, r: Rules | undefined): void {
    const where = `${(f.parent as PType).fullName.slice(1)}.${f.name}`;
    const rt = f.resolvedType;
    if (rt instanceof protobuf.Type) {
      const full = rt.fullName;
      const sink = this.sink(segs, n.pos, where);
      const errorsBefore = this.errors.length;
      if (n.kind === 'null') {
        if (r?.message?.required || r?.duration?.required || r?.any?.required || r?.timestamp?.required) sink.fail('required, but null');
        return;
      }
      const skip = r?.message?.skip === true;
      this.message(rt, n, segs, pgv && !skip);
      if (!pgv || this.errors.length > errorsBefore) return;
      const wrapped = WRAPPERS[full];
      if (wrapped && r?.[wrapped]) {
        const inner = n.kind === 'map' ? (n.entries.find((e) => e.key === 'value')?.value ?? { kind: 'null' }) : n;
        const v = inner.kind === 'null' ? defaultScalar(wrapped) : this.scalarValue(wrapped, inner);
        if (v !== undefined) checkScalarRules(wrapped, r[wrapped] as Rules, v, sink);
      } else if (full === '.google.protobuf.Duration' && r?.duration) {
        const nanos = n.kind === 'string' ? parseDuration(n.value) : n.kind === 'map' ? this.durationFromObject(n) : undefined;
        if (nanos !== undefined) checkDurationRules(r.duration as Rules, nanos, sink);
      } else if (full === '.google.protobuf.Any' && r?.any && n.kind === 'map') {
        const t = n.entries.find((e) => e.key === '@type')?.value;
        if (t?.kind === 'string') checkAnyRules(r.any as Rules, t.value, sink);
      } else if (full === '.google.protobuf.Timestamp') {
        checkTimestampRules(r?.timestamp as Rules | undefined, sink);
      }
      return;
    }
    if (rt instanceof protobuf.Enum) {
      const v = this.enumValue(rt, n, segs);
      if (v !== undefined && pgv && r?.enum) checkScalarRules('enum', r.enum as Rules, v, this.sink(segs, n.pos, where), (x) => this.enumDefined(rt, x));
      return;
    }
    if (n.kind === 'null') return;
    const ok = this.scalar(f.type, n, segs);
    if (ok && pgv && r?.[f.type]) {
      const v = this.scalarValue(f.type, n);
      if (v !== undefined) checkScalarRules(f.type, r[f.type] as Rules, v, this.sink(segs, n.pos, where));
    }
  }

  private durationFromObject(n: YNode & { kind: 'map' }): bigint | undefined {
    const get = (k: string, type: string) => {
      const e = n.entries.find((x) => x.key === k);
      return e ? this.scalarValue(type, e.value) : 0n;
    };
    const secs = get('seconds', 'int64');
    const nanos = get('nanos', 'int32');
    if (typeof secs !== 'bigint' || typeof nanos !== 'bigint') return undefined;
    return secs * 1_000_000_000n + nanos;
  }

  private mapKey(keyType: string, key: string, segs: Seg[], pos: Pos | undefined, r: Rules | undefined, where: string): void {
    let v: ScalarValue | undefined = key;
    if (keyType === 'bool') {
      if (key !== 'true' && key !== 'false') this.problem('error', 'wrong_type', segs, `map key must be "true" or "false"`, pos);
      v = key === 'true';
    } else if (INT_RANGES[keyType]) {
      v = this.scalarValue(keyType, { kind: 'string', value: key, quoted: true });
      if (v === undefined) this.problem('error', 'wrong_type', segs, `map key must be a ${keyType}`, pos);
    }
    if (r && v !== undefined) {
      const kind = Object.keys(r)[0];
      if (kind) checkScalarRules(kind, r[kind] as Rules, v, this.sink(segs, pos, `${where} (key)`));
    }
  }

  // -- scalars ----------------------------------------------------------------------------------

  /** Type-checks a scalar; returns whether it is acceptable. */
  private scalar(type: string, n: YNode, segs: Seg[]): boolean {
    if (n.kind === 'null') return true;
    const range = INT_RANGES[type];
    if (range || type === 'double' || type === 'float') {
      if (n.kind !== 'number' && n.kind !== 'string') {
        this.problem('error', 'wrong_type', segs, `expected a number (${type}), got ${describe(n)}`, n.pos);
        return false;
      }
      const v = this.scalarValue(type, n);
      if (v === undefined) {
        const outOfRange = range && n.kind === 'number' && Number.isInteger(n.value);
        this.problem(
          'error',
          outOfRange ? 'bad_value' : 'wrong_type',
          segs,
          outOfRange ? `${n.value} is out of range for ${type}` : `expected a number (${type}), got ${describe(n)}`,
          n.pos,
        );
        return false;
      }
      if (n.kind === 'string' && n.quoted && this.opts.fromYaml && (type === 'int32' || type === 'uint32' || type === 'sint32' || type === 'fixed32' || type === 'sfixed32')) {
        this.problem('warning', 'quoted_number', segs, `quoted number ${JSON.stringify(n.value)} for a ${type}: Envoy accepts it (proto3 JSON), but write it unquoted`, n.pos);
      }
      return true;
    }
    if (type === 'bool') {
      if (n.kind === 'string' && Object.prototype.hasOwnProperty.call(QUOTED_BOOLS, n.value.toLowerCase())) {
        this.problem('warning', 'legacy_json', segs, `quoted bool ${JSON.stringify(n.value)}: Envoy accepts it (protobuf legacy JSON syntax), but write ${QUOTED_BOOLS[n.value.toLowerCase()]} unquoted`, n.pos);
        return true;
      }
      if (n.kind !== 'bool') {
        this.problem('error', 'wrong_type', segs, `expected a bool (true/false), got ${describe(n)}`, n.pos);
        return false;
      }
      return true;
    }
    if (type === 'string') {
      if (n.kind !== 'string') {
        const hint = n.kind === 'number' || n.kind === 'bool' ? ` — quote it ("${n.text}") if you mean the string` : '';
        this.problem('error', 'wrong_type', segs, `expected a string, got ${describe(n)}${hint}`, n.pos);
        return false;
      }
      return true;
    }
    if (type === 'bytes') {
      if (n.kind !== 'string' || !BASE64_RE.test(n.value)) {
        this.problem('error', 'wrong_type', segs, `expected base64-encoded bytes, got ${describe(n)}`, n.pos);
        return false;
      }
      return true;
    }
    this.problem('error', 'wrong_type', segs, `unsupported scalar type ${type}`, n.pos);
    return false;
  }

  /** The value proto3 JSON parsing would produce, or undefined when it would fail. */
  scalarValue(type: string, n: YNode): ScalarValue | undefined {
    const range = INT_RANGES[type];
    if (range) {
      let v: bigint | undefined;
      // protobuf: a JSON number must be integral (and within 2^53); a quoted one must be plain
      // decimal digits with an optional sign (absl::SimpleAtoi, no spaces, no exponent).
      if (n.kind === 'number') v = Number.isInteger(n.value) && Math.abs(n.value) <= 2 ** 53 ? BigInt(n.value) : undefined;
      else if (n.kind === 'string' && /^[+-]?\d+$/.test(n.value)) v = BigInt(n.value.replace(/^\+/, ''));
      if (v === undefined || v < range[0] || v > range[1]) return undefined;
      return v;
    }
    if (type === 'double' || type === 'float') {
      let v: number | undefined;
      if (n.kind === 'number') v = n.value;
      else if (n.kind === 'string') {
        if (n.value === 'NaN') v = NaN;
        else if (n.value === 'Infinity') v = Infinity;
        else if (n.value === '-Infinity') v = -Infinity;
        else if (n.value.trim() !== '' && Number.isFinite(Number(n.value))) v = Number(n.value);
      }
      if (v === undefined) return undefined;
      if (type === 'float' && Number.isFinite(v) && Math.abs(v) > 3.4028234663852886e38) return undefined;
      return v;
    }
    if (type === 'bool') return n.kind === 'bool' ? n.value : n.kind === 'string' ? QUOTED_BOOLS[n.value.toLowerCase()] : undefined;
    if (type === 'string') return n.kind === 'string' ? n.value : undefined;
    if (type === 'bytes') return n.kind === 'string' && BASE64_RE.test(n.value) ? new Uint8Array(Buffer.from(n.value, 'base64')) : undefined;
    return undefined;
  }

  private enumDefined(e: PEnum, v: number): boolean {
    return Object.values(e.values).includes(v);
  }

  private enumValue(e: PEnum, n: YNode, segs: Seg[]): number | undefined {
    const name = e.fullName.slice(1);
    if (n.kind === 'null') return undefined;
    if (n.kind === 'number') {
      if (!Number.isInteger(n.value) || n.value < -(2 ** 31) || n.value > 2 ** 31 - 1) {
        this.problem('error', 'bad_enum', segs, `bad enum value ${n.text} for ${name}`, n.pos);
        return undefined;
      }
      return n.value;
    }
    if (n.kind !== 'string') {
      this.problem('error', 'wrong_type', segs, `expected an enum value of ${name} (${Object.keys(e.values).join(', ')}), got ${describe(n)}`, n.pos);
      return undefined;
    }
    // A quoted number is taken as the enum's number.
    if (/^[+-]?\d+$/.test(n.value) && Math.abs(Number(n.value)) <= 2 ** 31) return Number(n.value);
    // Envoy parses JSON with case_insensitive_enum_parsing: "auto" matches AUTO.
    const key = Object.prototype.hasOwnProperty.call(e.values, n.value)
      ? n.value
      : Object.prototype.hasOwnProperty.call(e.values, n.value.toUpperCase())
        ? n.value.toUpperCase()
        : undefined;
    if (key === undefined) {
      const near = closest(n.value.toUpperCase(), Object.keys(e.values));
      this.problem(
        'error',
        'bad_enum',
        segs,
        `bad enum value "${n.value}" for ${name}; expected one of ${Object.keys(e.values).join(', ')}${near ? ` (did you mean ${near}?)` : ''}`,
        n.pos,
      );
      return undefined;
    }
    if (key !== n.value) this.enumCanon.set(n, key);
    const vo = e.valuesOptions?.[key];
    if (vo?.['(envoy.annotations.disallowed_by_default_enum)'] === true) {
      this.problem('error', 'disallowed', segs, `${name}.${key} is deprecated and fatal by default in Envoy`, n.pos);
    } else if (vo?.deprecated === true) {
      this.problem('warning', 'deprecated', segs, `${name}.${key} is a deprecated enum value`, n.pos);
    }
    return e.values[key];
  }

  private duration(n: YNode, segs: Seg[]): void {
    if (n.kind !== 'string' || parseDuration(n.value) === undefined) {
      const hint = n.kind === 'number' ? ` — a Duration is a string with an "s" suffix, e.g. "${n.text}s"` : '';
      this.problem('error', 'wrong_type', segs, `expected a duration string like "30s" or "0.250s", got ${describe(n)}${hint}`, n.pos);
    }
  }

  // -- Any / TypedStruct ------------------------------------------------------------------------

  /** Resolve a type URL; reports and returns undefined when it cannot be checked. */
  private resolveTypeUrl(url: string, segs: Seg[], pos: Pos | undefined): PType | undefined {
    const slash = url.lastIndexOf('/');
    if (slash < 0) {
      this.problem('error', 'unknown_type', segs, `type URL "${url}" must look like "type.googleapis.com/<full.message.Name>"`, pos);
      return undefined;
    }
    const name = url.slice(slash + 1);
    let found: protobuf.ReflectionObject | null = null;
    try {
      found = name ? this.api.root.lookup(name.split('.')) : null;
    } catch {
      found = null;
    }
    if (found instanceof protobuf.Type && found.fullName === `.${name}`) {
      if (!this.typesChecked.includes(name)) this.typesChecked.push(name);
      return found;
    }
    if (this.api.excludedTypes.has(name)) {
      this.problem(
        'error',
        'unverifiable_type',
        segs,
        `@type "${name}" is in Envoy's API, but its .proto is not shipped with @grpc/grpc-js-xds (it imports protos that are not bundled), so this block cannot be checked`,
        pos,
      );
      return undefined;
    }
    indexApi(this.api);
    const last = name.split('.').pop() ?? name;
    const sameName = allTypeNames!.filter((t) => t.endsWith(`.${last}`)).slice(0, 3);
    const near = sameName.length ? undefined : closest(name, allTypeNames!.filter((t) => t.split('.').slice(0, -1).join('.') === name.split('.').slice(0, -1).join('.')));
    const hint = sameName.length ? `; a message of that name exists as ${sameName.join(', ')}` : near ? `; did you mean ${near}?` : '';
    this.problem('error', 'unknown_type', segs, `unknown @type "${url}": no such message in Envoy's v3 API${hint}`, pos);
    return undefined;
  }

  any(n: YNode, segs: Seg[], pgv: boolean): void {
    if (n.kind !== 'map') {
      this.problem('error', 'wrong_type', segs, `expected an object with "@type" (google.protobuf.Any), got ${describe(n)}`, n.pos);
      return;
    }
    const typeEntry = n.entries.find((e) => e.key === '@type');
    if (!typeEntry) {
      if (n.entries.length > 0) this.problem('error', 'unknown_type', segs, 'missing "@type" (every typed_config / Any names its message type)', n.pos);
      return;
    }
    const here = [...segs, '@type'];
    if (typeEntry.value.kind !== 'string') {
      this.problem('error', 'wrong_type', here, `expected a type URL string, got ${describe(typeEntry.value)}`, typeEntry.pos);
      return;
    }
    const t = this.resolveTypeUrl(typeEntry.value.value, here, typeEntry.value.pos ?? typeEntry.pos);
    if (!t) return;
    if (SPECIAL_JSON.has(t.fullName)) {
      for (const e of n.entries) {
        if (e.key !== '@type' && e.key !== 'value') this.problem('error', 'unknown_field', [...segs, e.key], `unknown field (an Any holding ${t.fullName.slice(1)} has only "value")`, e.pos);
      }
      const v = n.entries.find((e) => e.key === 'value');
      if (v) this.message(t, v.value, [...segs, 'value'], pgv);
      return;
    }
    this.fields(t, n.entries, segs, pgv, n.pos, new Set(['@type']));
    if (TYPED_STRUCTS.has(t.fullName)) this.typedStruct(n, segs, pgv);
  }

  /** xds.type.v3.TypedStruct / udpa.type.v1.TypedStruct: `value` is checked as `type_url`. */
  private typedStruct(n: YNode & { kind: 'map' }, segs: Seg[], pgv: boolean): void {
    const url = n.entries.find((e) => e.key === 'type_url' || e.key === 'typeUrl');
    const value = n.entries.find((e) => e.key === 'value');
    if (!url || url.value.kind !== 'string') return;
    const t = this.resolveTypeUrl(url.value.value, [...segs, url.key], url.value.pos ?? url.pos);
    if (!t || !value) return;
    this.message(t, value.value, [...segs, 'value'], pgv);
  }
}

function defaultScalar(kind: string): ScalarValue {
  return kind === 'string' ? '' : kind === 'bytes' ? new Uint8Array() : kind === 'bool' ? false : INT_RANGES[kind] ? 0n : 0;
}

function plain(n: YNode): unknown {
  switch (n.kind) {
    case 'list':
      return n.items.map(plain);
    case 'map':
      return Object.fromEntries(n.entries.map((e) => [e.key, plain(e.value)]));
    case 'null':
      return null;
    default:
      return n.value;
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-references Envoy checks when it loads a bootstrap (not expressible in the protos)

const child = (n: YNode | undefined, key: string): YNode | undefined =>
  n?.kind === 'map' ? n.entries.find((e) => e.key === key || e.key === jsonName(key))?.value : undefined;
const childKey = (n: YNode | undefined, key: string): string => (n?.kind === 'map' ? (n.entries.find((e) => e.key === key || e.key === jsonName(key))?.key ?? key) : key);
const items = (n: YNode | undefined): YNode[] => (n?.kind === 'list' ? n.items : n && n.kind !== 'null' ? [n] : []);
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/**
 * A static route table naming a cluster that is not defined: Envoy validates route → cluster
 * references of inline route_configs at load time (RouteConfiguration.validate_clusters defaults
 * to true for them) and refuses to start.
 */
function checkRouteClusters(root: YNode, w: Walker): void {
  const sr = child(root, 'static_resources');
  const clusters = new Set<string>();
  for (const c of items(child(sr, 'clusters'))) {
    const name = child(c, 'name');
    if (name?.kind === 'string') clusters.add(name.value);
  }
  items(child(sr, 'listeners')).forEach((listener, li) => {
    const chains: [YNode, Seg[]][] = items(child(listener, 'filter_chains')).map((fc, i) => [fc, ['static_resources', 'listeners', li, childKey(listener, 'filter_chains'), i]]);
    const dfc = child(listener, 'default_filter_chain');
    if (dfc) chains.push([dfc, ['static_resources', 'listeners', li, childKey(listener, 'default_filter_chain')]]);
    for (const [chain, chainSegs] of chains) {
      items(child(chain, 'filters')).forEach((filter, fi) => {
        const tc = child(filter, 'typed_config');
        const type = child(tc, '@type');
        if (type?.kind !== 'string' || type.value.replace(/^.*\//, '') !== HCM_TYPE) return;
        const rc = child(tc, 'route_config');
        if (!rc || rc.kind !== 'map') return;
        const vc = child(rc, 'validate_clusters');
        if (vc && ((vc.kind === 'bool' && !vc.value) || (vc.kind === 'string' && /^(false|f|no|n|0)$/i.test(vc.value)) || (vc.kind === 'map' && child(vc, 'value')?.kind === 'bool' && (child(vc, 'value') as { value: boolean }).value === false))) return;
        const rcSegs: Seg[] = [...chainSegs, childKey(chain, 'filters'), fi, childKey(filter, 'typed_config'), childKey(tc, 'route_config')];
        items(child(rc, 'virtual_hosts')).forEach((vh, vi) => {
          items(child(vh, 'routes')).forEach((route, ri) => {
            const action = child(route, 'route');
            const base: Seg[] = [...rcSegs, childKey(rc, 'virtual_hosts'), vi, childKey(vh, 'routes'), ri, childKey(route, 'route')];
            const refs: [YNode | undefined, Seg[]][] = [[child(action, 'cluster'), [...base, childKey(action, 'cluster')]]];
            const wc = child(action, 'weighted_clusters');
            items(child(wc, 'clusters')).forEach((c, ci) => refs.push([child(c, 'name'), [...base, childKey(action, 'weighted_clusters'), childKey(wc, 'clusters'), ci, childKey(c, 'name')]]));
            for (const [ref, segs] of refs) {
              if (ref?.kind === 'string' && ref.value !== '' && !clusters.has(ref.value)) {
                const near = closest(ref.value, clusters);
                w.problem(
                  'error',
                  'reference',
                  segs,
                  `unknown cluster "${ref.value}": no cluster of that name in static_resources.clusters${near ? ` (did you mean "${near}"?)` : ''}; Envoy rejects a static route table naming an unknown cluster (set route_config.validate_clusters: false if it comes from CDS)`,
                  ref.pos,
                );
              }
            }
          });
        });
      });
    }
  });
}

/** A proto3 JSON Duration string as nanoseconds, or undefined if malformed / out of range. */
function parseDuration(s: string): bigint | undefined {
  const m = DURATION_RE.exec(s);
  if (!m) return undefined;
  const secs = BigInt(m[2]!);
  if (secs > MAX_DURATION_S) return undefined;
  const nanos = BigInt((m[3] ?? '').padEnd(9, '0') || '0');
  const total = secs * 1_000_000_000n + nanos;
  return m[1] ? -total : total;
}

// ---------------------------------------------------------------------------------------------
// Public API

function isYNode(v: unknown): v is YNode {
  return !!v && typeof v === 'object' && 'kind' in v && typeof (v as { kind: unknown }).kind === 'string' && ['null', 'bool', 'number', 'string', 'list', 'map'].includes((v as { kind: string }).kind);
}

/** Looks up a message type by full name (`envoy.config.listener.v3.Listener`). */
export function envoyMessageType(typeName: string): protobuf.Type {
  const api = loadEnvoyApi();
  const name = typeName.replace(/^\./, '').replace(/^.*\//, '');
  let t: protobuf.ReflectionObject | null = null;
  try {
    t = api.root.lookup(name.split('.'));
  } catch {
    t = null;
  }
  if (!(t instanceof protobuf.Type) || t.fullName !== `.${name}`) {
    throw new EnvoyConfigError(`no message type "${typeName}" in the Envoy v3 API protos`);
  }
  return t;
}

/**
 * Check `value` (a plain JS object, e.g. an xDS resource, or a parsed YNode) against the Envoy
 * message type `typeName` (full name, with or without a type.googleapis.com/ prefix).
 */
export function validateEnvoyMessage(typeName: string, value: unknown, opts: ValidateOptions = {}): EnvoyValidationResult {
  const api = loadEnvoyApi();
  const t = envoyMessageType(typeName);
  const node = isYNode(value) ? value : fromJs(value);
  const w = new Walker(api, opts);
  const typeEntry = node.kind === 'map' && t.fullName !== '.google.protobuf.Any' ? node.entries.find((e) => e.key === '@type') : undefined;
  if (node.kind !== 'map' && !SPECIAL_JSON.has(t.fullName)) {
    w.problem('error', 'wrong_type', [], `expected an object (${t.fullName.slice(1)}), got ${describe(node)}`, node.pos);
  } else if (typeEntry) {
    // Given in Any form ({"@type": ..., fields}), as xDS resources often are: the @type must name `t`.
    const named = typeEntry.value.kind === 'string' ? typeEntry.value.value.replace(/^.*\//, '') : undefined;
    if (named !== t.fullName.slice(1)) {
      w.problem('error', 'unknown_type', ['@type'], `@type ${typeEntry.value.kind === 'string' ? `"${typeEntry.value.value}"` : describe(typeEntry.value)} does not name ${t.fullName.slice(1)}`, typeEntry.pos);
    } else w.any(node, [], true);
  } else {
    w.message(t, node, [], true);
  }
  if (t.fullName === `.${BOOTSTRAP_TYPE}`) checkRouteClusters(node, w);
  return {
    ok: w.errors.length === 0,
    type: t.fullName.slice(1),
    errors: w.errors,
    warnings: w.warnings,
    typesChecked: w.typesChecked,
    unenforcedRules: [...w.unenforced].sort(),
    json: toJson(node, w.enumCanon),
  };
}

/** Check a bootstrap (or any message, given `typeName`) written as Envoy YAML. */
export function validateEnvoyYaml(text: string, opts: { typeName?: string; file?: string } = {}): EnvoyValidationResult {
  const typeName = opts.typeName ?? BOOTSTRAP_TYPE;
  const parsed = parseEnvoyYaml(text);
  const yamlErrors: EnvoyProblem[] = parsed.errors.map((e) => ({ severity: 'error', kind: 'yaml', path: e.path, message: e.message, pos: e.pos }));
  const yamlWarnings: EnvoyProblem[] = parsed.warnings.map((e) => ({ severity: 'warning', kind: 'duplicate_key', path: e.path, message: e.message, pos: e.pos }));
  // A document with YAML syntax errors is rejected by Envoy before any schema check; checking the
  // parser's best-effort recovery would only add noise.
  if (!parsed.node || yamlErrors.length > 0) {
    return { ok: false, type: typeName, errors: yamlErrors, warnings: yamlWarnings, typesChecked: [], unenforcedRules: [], file: opts.file };
  }
  const r = validateEnvoyMessage(typeName, parsed.node, { fromYaml: true });
  const errors = [...yamlErrors, ...r.errors];
  return { ...r, ok: errors.length === 0, errors, warnings: [...yamlWarnings, ...r.warnings], file: opts.file };
}

/** Check a bootstrap YAML (or JSON) file. */
export function validateEnvoyFile(file: string, opts: { typeName?: string } = {}): EnvoyValidationResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new EnvoyConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const result = validateEnvoyYaml(text, { ...opts, file });
  log.debug({ file, ok: result.ok, errors: result.errors.length, warnings: result.warnings.length, types: result.typesChecked.length }, 'checked Envoy config');
  return result;
}

/**
 * Encode `value` (plain JS / proto3 JSON, or a parsed YNode) as the wire format of `typeName`, using
 * protobufjs' own proto3 JSON parser. That parser is independent of the walk above, so a config
 * that passes both has been accepted by two implementations and really serialises; the bytes are
 * also what an xDS server puts into an Any. Throws EnvoyConfigError when the parser rejects it.
 */
export function encodeEnvoyMessage(typeName: string, value: unknown): Uint8Array {
  const t = envoyMessageType(typeName);
  const json = isYNode(value) ? toJson(value) : value;
  try {
    return t.encode(protojson.fromJson(t, json)).finish();
  } catch (err) {
    throw new EnvoyConfigError(`protobufjs proto3 JSON parser rejects it as ${t.fullName.slice(1)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Throws EnvoyConfigError listing every problem when `value` is not a valid `typeName`. */
export function assertValidEnvoyMessage(typeName: string, value: unknown): void {
  const r = validateEnvoyMessage(typeName, value);
  if (!r.ok) {
    const problems = r.errors.map((p) => formatProblem(p));
    throw new EnvoyConfigError(`invalid ${r.type}: ${problems.length} problem(s): ${problems.join('; ')}`, { problems });
  }
}

/** Every *.yaml / *.yml / *.json file directly under `dir` (default: the repo's envoy/). */
export function envoyConfigFiles(dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../envoy')): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

// ---------------------------------------------------------------------------------------------
// The real thing, when it is installed

export interface EnvoyBinaryResult {
  status: 'ok' | 'failed' | 'skipped';
  /** Why it was skipped, or the tail of Envoy's output when it failed. */
  detail: string;
  binary?: string;
}

/** `envoy --mode validate -c <file>` when an envoy binary is on PATH; otherwise `skipped`. */
export function validateWithEnvoyBinary(file: string, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<EnvoyBinaryResult> {
  const binary = findEnvoyBinary(opts.env);
  if (!binary) return Promise.resolve({ status: 'skipped', detail: 'skipped: no envoy binary on PATH' });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve) => {
    const child = spawn(binary, ['--mode', 'validate', '-c', path.resolve(file), '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString('utf8')).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ status: 'failed', detail: `could not run ${binary}: ${err.message}`, binary });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const detail = out.trim() || `exit ${code ?? signal}`;
      log.debug({ file, binary, code, signal }, 'envoy --mode validate finished');
      resolve({ status: code === 0 ? 'ok' : 'failed', detail: code === 0 ? detail : signal ? `killed by ${signal} after ${timeoutMs} ms: ${detail}` : detail, binary });
    });
  });
}
