// protoc-gen-validate rules, as far as this checker enforces them.
//
// Envoy runs the PGV-generated Validate() on the bootstrap and on every typed_config it
// instantiates, so a config can be well-typed and still be rejected (a cluster without a name,
// max_concurrent_streams: 0, a header name with a space). The rules come from the
// `(validate.rules)` / `(validate.required)` options on the loaded protos.
//
// Enforced: message.required; oneof (validate.required); numeric const/lt/lte/gt/gte/in/not_in
// (incl. PGV's "outside the range" form); bool.const; enum const/defined_only/in/not_in;
// string const/len/min_len/max_len/len_bytes/min_bytes/max_bytes/prefix/suffix/contains/
// not_contains/in/not_in/pattern (RE2 approximated by a JS RegExp)/well_known_regex/ip/ipv4/ipv6/
// hostname/address/uri/uuid; bytes len/min_len/max_len; repeated min_items/max_items/unique/items;
// map min_pairs/max_pairs/keys/values; duration required/const/lt/lte/gt/gte/in/not_in;
// any required/in/not_in; timestamp required; ignore_empty; message.skip.
// Everything else is recorded as "not enforced" (see `unenforced`) instead of being silently passed.

import net from 'node:net';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Rules = Record<string, any>;

/** Deep-merge every `(validate.rules)` entry of a protobufjs `parsedOptions` list. */
export function rulesFrom(parsedOptions: readonly Record<string, unknown>[] | null | undefined, key = '(validate.rules)'): Rules | undefined {
  if (!parsedOptions) return undefined;
  let out: Rules | undefined;
  for (const entry of parsedOptions) {
    if (entry && Object.prototype.hasOwnProperty.call(entry, key)) out = deepMerge(out ?? {}, entry[key] as Rules);
  }
  return out;
}

function deepMerge(a: Rules, b: Rules): Rules {
  const out: Rules = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) {
    if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k])) {
      out[k] = deepMerge(out[k] as Rules, v as Rules);
    } else out[k] = v;
  }
  return out;
}

export type ScalarValue = bigint | number | string | boolean | Uint8Array;

const asList = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function toBig(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) return BigInt(String(v));
  return undefined;
}

function cmp(a: bigint | number, b: unknown): number | undefined {
  if (typeof a === 'bigint') {
    const bb = toBig(b);
    if (bb === undefined) return undefined;
    return a < bb ? -1 : a > bb ? 1 : 0;
  }
  const bn = Number(b);
  if (Number.isNaN(bn)) return undefined;
  return a < bn ? -1 : a > bn ? 1 : 0;
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

/** const/lt/lte/gt/gte/in/not_in for numbers (PGV semantics, incl. exclusive "outside" ranges). */
function numeric(r: Rules, v: bigint | number): string | undefined {
  if (r.const !== undefined && cmp(v, r.const) !== 0) return `must equal ${show(r.const)}`;
  if (r.in !== undefined && !asList(r.in).some((x) => cmp(v, x) === 0)) return `must be one of ${asList(r.in).map(show).join(', ')}`;
  if (r.not_in !== undefined && asList(r.not_in).some((x) => cmp(v, x) === 0)) return `must not be one of ${asList(r.not_in).map(show).join(', ')}`;
  const lowKey = r.gt !== undefined ? 'gt' : r.gte !== undefined ? 'gte' : undefined;
  const highKey = r.lt !== undefined ? 'lt' : r.lte !== undefined ? 'lte' : undefined;
  const okLow = () => (lowKey === undefined ? true : lowKey === 'gt' ? cmp(v, r.gt)! > 0 : cmp(v, r.gte)! >= 0);
  const okHigh = () => (highKey === undefined ? true : highKey === 'lt' ? cmp(v, r.lt)! < 0 : cmp(v, r.lte)! <= 0);
  const low = lowKey === 'gt' ? `> ${show(r.gt)}` : lowKey === 'gte' ? `>= ${show(r.gte)}` : '';
  const high = highKey === 'lt' ? `< ${show(r.lt)}` : highKey === 'lte' ? `<= ${show(r.lte)}` : '';
  if (lowKey && highKey) {
    const lowVal = r[lowKey];
    const highVal = r[highKey];
    const inverted = (typeof v === 'bigint' ? cmp(toBig(highVal) ?? 0n, lowVal) : cmp(Number(highVal), lowVal))! < 0;
    if (inverted) {
      if (!(okLow() || okHigh())) return `must be ${high} or ${low}`;
    } else if (!(okLow() && okHigh())) return `must be ${low} and ${high}`;
    return undefined;
  }
  if (!okLow()) return `must be ${low}`;
  if (!okHigh()) return `must be ${high}`;
  return undefined;
}

const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+,\-.^_|~`]+$/; // PGV's class has the range +-. (+ , - .)
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;
const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const regexCache = new Map<string, RegExp | null>();
function re2(pattern: string): RegExp | null {
  if (!regexCache.has(pattern)) {
    let r: RegExp | null = null;
    try {
      r = new RegExp(pattern, 'u');
    } catch {
      try {
        r = new RegExp(pattern);
      } catch {
        r = null;
      }
    }
    regexCache.set(pattern, r);
  }
  return regexCache.get(pattern)!;
}

export interface RuleSink {
  fail(message: string): void;
  unenforced(rule: string): void;
}

function stringRules(r: Rules, s: string, sink: RuleSink): void {
  if (r.ignore_empty && s === '') return;
  const runes = [...s].length;
  const bytes = Buffer.byteLength(s, 'utf8');
  if (r.const !== undefined && s !== r.const) sink.fail(`must equal ${show(r.const)}`);
  if (r.len !== undefined && runes !== Number(r.len)) sink.fail(`must be exactly ${r.len} characters`);
  if (r.min_len !== undefined && runes < Number(r.min_len)) {
    sink.fail(Number(r.min_len) === 1 && s === '' ? 'must not be empty (required)' : `must be at least ${r.min_len} characters`);
  }
  if (r.max_len !== undefined && runes > Number(r.max_len)) sink.fail(`must be at most ${r.max_len} characters`);
  if (r.len_bytes !== undefined && bytes !== Number(r.len_bytes)) sink.fail(`must be exactly ${r.len_bytes} bytes`);
  if (r.min_bytes !== undefined && bytes < Number(r.min_bytes)) sink.fail(`must be at least ${r.min_bytes} bytes`);
  if (r.max_bytes !== undefined && bytes > Number(r.max_bytes)) sink.fail(`must be at most ${r.max_bytes} bytes`);
  if (r.prefix !== undefined && !s.startsWith(r.prefix)) sink.fail(`must start with ${show(r.prefix)}`);
  if (r.suffix !== undefined && !s.endsWith(r.suffix)) sink.fail(`must end with ${show(r.suffix)}`);
  if (r.contains !== undefined && !s.includes(r.contains)) sink.fail(`must contain ${show(r.contains)}`);
  if (r.not_contains !== undefined && s.includes(r.not_contains)) sink.fail(`must not contain ${show(r.not_contains)}`);
  if (r.in !== undefined && !asList(r.in).includes(s)) sink.fail(`must be one of ${asList(r.in).map(show).join(', ')}`);
  if (r.not_in !== undefined && asList(r.not_in).includes(s)) sink.fail(`must not be one of ${asList(r.not_in).map(show).join(', ')}`);
  if (r.pattern !== undefined) {
    const re = re2(String(r.pattern));
    if (!re) sink.unenforced(`string.pattern ${show(r.pattern)} (not a JS-compatible regex)`);
    else if (!re.test(s)) sink.fail(`must match /${r.pattern}/`);
  }
  if (r.well_known_regex !== undefined) {
    const which = r.well_known_regex === 1 || r.well_known_regex === 'HTTP_HEADER_NAME' ? 'name' : r.well_known_regex === 2 || r.well_known_regex === 'HTTP_HEADER_VALUE' ? 'value' : undefined;
    const strict = r.strict !== false;
    const re = !strict ? HEADER_LOOSE : which === 'name' ? HEADER_NAME_STRICT : which === 'value' ? HEADER_VALUE_STRICT : undefined;
    if (re && !re.test(s)) sink.fail(`must be a valid HTTP header ${which ?? ''}`.trim());
  }
  if (r.ip && net.isIP(s) === 0) sink.fail('must be an IP address');
  if (r.ipv4 && !net.isIPv4(s)) sink.fail('must be an IPv4 address');
  if (r.ipv6 && !net.isIPv6(s)) sink.fail('must be an IPv6 address');
  if (r.hostname && !HOSTNAME.test(s)) sink.fail('must be a hostname');
  if (r.address && net.isIP(s) === 0 && !HOSTNAME.test(s)) sink.fail('must be an IP address or hostname');
  if (r.uuid && !UUID.test(s)) sink.fail('must be a UUID');
  if (r.uri) {
    try {
      new URL(s);
    } catch {
      sink.fail('must be an absolute URI');
    }
  }
  for (const k of ['email', 'uri_ref', 'ip_with_prefixlen', 'ipv4_with_prefixlen', 'ipv6_with_prefixlen', 'ip_prefix', 'ipv4_prefix', 'ipv6_prefix', 'host_and_port']) {
    if (r[k]) sink.unenforced(`string.${k}`);
  }
}

function bytesRules(r: Rules, b: Uint8Array, sink: RuleSink): void {
  if (r.ignore_empty && b.length === 0) return;
  if (r.len !== undefined && b.length !== Number(r.len)) sink.fail(`must be exactly ${r.len} bytes`);
  if (r.min_len !== undefined && b.length < Number(r.min_len)) sink.fail(`must be at least ${r.min_len} bytes`);
  if (r.max_len !== undefined && b.length > Number(r.max_len)) sink.fail(`must be at most ${r.max_len} bytes`);
  for (const k of ['const', 'pattern', 'prefix', 'suffix', 'contains', 'in', 'not_in', 'ip', 'ipv4', 'ipv6']) {
    if (r[k] !== undefined) sink.unenforced(`bytes.${k}`);
  }
}

/** Rules for one scalar value. `kind` is the PGV rule key: uint32, string, enum, … */
export function checkScalarRules(kind: string, r: Rules | undefined, v: ScalarValue, sink: RuleSink, enumDefined?: (n: number) => boolean): void {
  if (!r) return;
  switch (kind) {
    case 'string':
      stringRules(r, v as string, sink);
      return;
    case 'bytes':
      bytesRules(r, v as Uint8Array, sink);
      return;
    case 'bool':
      if (r.const !== undefined && v !== r.const) sink.fail(`must be ${r.const}`);
      return;
    case 'enum': {
      const n = Number(v);
      if (r.defined_only && enumDefined && !enumDefined(n)) sink.fail(`${n} is not a defined value of the enum`);
      const e = numeric({ const: r.const, in: r.in, not_in: r.not_in }, n);
      if (e) sink.fail(e);
      return;
    }
    default: {
      if (r.ignore_empty && (v === 0 || v === 0n)) return;
      const e = numeric(r, v as bigint | number);
      if (e) sink.fail(e);
    }
  }
}

/** A google.protobuf.Duration as nanoseconds (bigint). */
function durationNanos(d: unknown): bigint {
  if (d && typeof d === 'object') {
    const o = d as { seconds?: unknown; nanos?: unknown };
    return (toBig(o.seconds ?? 0) ?? 0n) * 1_000_000_000n + (toBig(o.nanos ?? 0) ?? 0n);
  }
  return 0n;
}

function formatNanos(n: bigint): string {
  const neg = n < 0n;
  const a = neg ? -n : n;
  const s = a / 1_000_000_000n;
  const f = a % 1_000_000_000n;
  return `${neg ? '-' : ''}${s}${f ? `.${f.toString().padStart(9, '0').replace(/0+$/, '')}` : ''}s`;
}

export function checkDurationRules(r: Rules | undefined, nanos: bigint, sink: RuleSink): void {
  if (!r) return;
  const bound = (k: string) => (r[k] === undefined ? undefined : durationNanos(r[k]));
  const c = bound('const');
  if (c !== undefined && nanos !== c) sink.fail(`must equal ${formatNanos(c)}`);
  const lt = bound('lt');
  const lte = bound('lte');
  const gt = bound('gt');
  const gte = bound('gte');
  const fmt = (k: string, v: bigint) => `${k === 'lt' ? '<' : k === 'lte' ? '<=' : k === 'gt' ? '>' : '>='} ${formatNanos(v)}`;
  const lowKey = gt !== undefined ? 'gt' : gte !== undefined ? 'gte' : undefined;
  const highKey = lt !== undefined ? 'lt' : lte !== undefined ? 'lte' : undefined;
  const lowV = gt ?? gte;
  const highV = lt ?? lte;
  const okLow = lowKey === undefined || (lowKey === 'gt' ? nanos > lowV! : nanos >= lowV!);
  const okHigh = highKey === undefined || (highKey === 'lt' ? nanos < highV! : nanos <= highV!);
  if (lowKey && highKey) {
    if (highV! < lowV!) {
      if (!(okLow || okHigh)) sink.fail(`must be ${fmt(highKey, highV!)} or ${fmt(lowKey, lowV!)}`);
    } else if (!(okLow && okHigh)) sink.fail(`must be ${fmt(lowKey, lowV!)} and ${fmt(highKey, highV!)}`);
  } else if (!okLow) sink.fail(`must be ${fmt(lowKey!, lowV!)}`);
  else if (!okHigh) sink.fail(`must be ${fmt(highKey!, highV!)}`);
  if (r.in !== undefined && !asList(r.in).some((x) => durationNanos(x) === nanos)) sink.fail('must be one of the allowed durations');
  if (r.not_in !== undefined && asList(r.not_in).some((x) => durationNanos(x) === nanos)) sink.fail('must not be one of the excluded durations');
}

export function checkAnyRules(r: Rules | undefined, typeUrl: string, sink: RuleSink): void {
  if (!r) return;
  if (r.in !== undefined && !asList(r.in).includes(typeUrl)) sink.fail(`@type must be one of ${asList(r.in).map(show).join(', ')}`);
  if (r.not_in !== undefined && asList(r.not_in).includes(typeUrl)) sink.fail(`@type must not be ${asList(r.not_in).map(show).join(', ')}`);
}

export function checkTimestampRules(r: Rules | undefined, sink: RuleSink): void {
  if (!r) return;
  for (const k of Object.keys(r)) if (k !== 'required') sink.unenforced(`timestamp.${k}`);
}
