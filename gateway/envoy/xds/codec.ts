// proto3-JSON resources <-> the bytes inside a google.protobuf.Any.
//
// resources.ts builds every xDS resource the way Envoy's own YAML/JSON config spells it (snake_case
// field names, Durations as "0s", wrapper types as bare numbers, `typed_config` Anys as
// `{ "@type": ..., ...fields }`), so what the server emits reads like envoy/*.yaml and can be put
// into a bootstrap for `envoy --mode validate` (test/xds.test.ts). protobufjs' fromObject() does
// not speak that dialect and silently drops unknown keys, so this module walks the message
// descriptors itself:
//
//   encodeResource(typeName, json) → bytes      (strict: unknown field, bad enum, wrong scalar type,
//                                                two members of one oneof, unknown @type all throw
//                                                XdsError GW_ERR_XDS_RESOURCE with the field path)
//   decodeResource(typeName, bytes) → json      (the inverse, used by tests and debugging)
//
// Supported well-known types: Any, Duration, Struct/Value/ListValue, Empty and the wrappers.

import protobuf from 'protobufjs';
import { XdsError } from './errors.js';
import { resourceRoot, TYPE_URL_PREFIX } from './protos.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map((w) => `.google.protobuf.${w}Value`),
);

function fail(path: string, message: string): never {
  throw new XdsError('GW_ERR_XDS_RESOURCE', `${path || '<root>'}: ${message}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function lookupType(name: string, path: string): protobuf.Type {
  const root = resourceRoot();
  const t = root.lookup(name.startsWith('.') ? name : `.${name}`);
  if (!(t instanceof protobuf.Type)) fail(path, `unknown message type "${name}"`);
  return t;
}

// ---------------------------------------------------------------- encode (JSON → protobufjs object)

function parseDuration(v: unknown, path: string): { seconds: string; nanos: number } {
  if (typeof v !== 'string') fail(path, `Duration must be a string like "1.5s", got ${JSON.stringify(v)}`);
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
  if (!m) fail(path, `"${v}" is not a Duration (e.g. "0s", "1.5s")`);
  const sign = m[1] ? -1 : 1;
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: String(sign * Number(m[2])), nanos: sign * nanos };
}

function jsonToValue(v: unknown, path: string): Record<string, unknown> {
  if (v === null) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map((x, i) => jsonToValue(x, `${path}[${i}]`)) } };
  if (isObject(v)) return { struct_value: jsonToStruct(v, path) };
  fail(path, `cannot represent ${typeof v} in a google.protobuf.Value`);
}

function jsonToStruct(v: unknown, path: string): Record<string, unknown> {
  if (!isObject(v)) fail(path, 'Struct must be an object');
  const fields: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) fields[k] = jsonToValue(x, `${path}.${k}`);
  return { fields };
}

function scalar(field: protobuf.Field, v: unknown, path: string): unknown {
  switch (field.type) {
    case 'string':
      if (typeof v !== 'string') fail(path, `expected a string, got ${JSON.stringify(v)}`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') fail(path, `expected a boolean, got ${JSON.stringify(v)}`);
      return v;
    case 'bytes':
      if (typeof v !== 'string') fail(path, 'expected base64 bytes');
      return Buffer.from(v, 'base64');
    case 'double':
    case 'float':
      if (typeof v !== 'number' && !(typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)))) {
        fail(path, `expected a number, got ${JSON.stringify(v)}`);
      }
      return Number(v);
    default: {
      // (s|u|sfixed|fixed)(32|64)
      const ok = (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v));
      if (!ok) fail(path, `expected an integer (${field.type}), got ${JSON.stringify(v)}`);
      if (/^u|^fixed/.test(field.type) && Number(v) < 0) fail(path, `${field.type} cannot be negative`);
      return field.type.endsWith('64') ? String(v) : Number(v);
    }
  }
}

function fieldValue(field: protobuf.Field, v: unknown, path: string): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return messageToPb(rt, v, path);
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'string') {
      const n = rt.values[v];
      if (n === undefined) fail(path, `"${v}" is not a value of enum ${rt.fullName.slice(1)} (${Object.keys(rt.values).join(', ')})`);
      return n;
    }
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    fail(path, `expected an enum name of ${rt.fullName.slice(1)}, got ${JSON.stringify(v)}`);
  }
  return scalar(field, v, path);
}

function messageToPb(type: protobuf.Type, v: unknown, path: string): Record<string, unknown> {
  switch (type.fullName) {
    case '.google.protobuf.Duration':
      return parseDuration(v, path);
    case '.google.protobuf.Struct':
      return jsonToStruct(v, path);
    case '.google.protobuf.Value':
      return jsonToValue(v, path);
    case '.google.protobuf.ListValue':
      if (!Array.isArray(v)) fail(path, 'ListValue must be an array');
      return { values: v.map((x, i) => jsonToValue(x, `${path}[${i}]`)) };
    case '.google.protobuf.Empty':
      if (!isObject(v) || Object.keys(v).length > 0) fail(path, 'Empty must be {}');
      return {};
    case '.google.protobuf.Any': {
      if (!isObject(v)) fail(path, 'Any must be an object with "@type"');
      const url = v['@type'];
      if (typeof url !== 'string' || !url.includes('/')) fail(path, 'Any needs "@type": "type.googleapis.com/<full.message.Name>"');
      const inner = lookupType(url.slice(url.lastIndexOf('/') + 1), `${path}.@type`);
      const { ['@type']: _drop, ...rest } = v;
      return { type_url: url, value: encodeWith(inner, rest, path) };
    }
  }
  if (WRAPPERS.has(type.fullName)) {
    const valueField = type.fields.value;
    if (!valueField) fail(path, `${type.fullName} has no value field`);
    return { value: scalar(valueField, v, path) };
  }
  if (!isObject(v)) fail(path, `expected an object for ${type.fullName.slice(1)}, got ${JSON.stringify(v)}`);
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(v)) {
    const field = type.fields[key] ?? type.fields[snake(key)];
    const p = path ? `${path}.${key}` : key;
    if (!field) fail(p, `no field "${key}" in ${type.fullName.slice(1)}`);
    if (raw === null || raw === undefined) continue;
    field.resolve();
    if (field.map) {
      if (!isObject(raw)) fail(p, 'expected an object (map field)');
      const m: Record<string, unknown> = {};
      for (const [mk, mv] of Object.entries(raw)) m[mk] = fieldValue(field, mv, `${p}.${mk}`);
      out[field.name] = m;
    } else if (field.repeated) {
      if (!Array.isArray(raw)) fail(p, 'expected a list (repeated field)');
      out[field.name] = raw.map((x, i) => fieldValue(field, x, `${p}[${i}]`));
    } else {
      out[field.name] = fieldValue(field, raw, p);
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.fieldsArray.filter((f) => out[f.name] !== undefined).map((f) => f.name);
    if (set.length > 1) fail(path, `oneof "${oneof.name}" has more than one member set: ${set.join(', ')}`);
  }
  return out;
}

function encodeWith(type: protobuf.Type, json: unknown, path: string): Uint8Array {
  // messageToPb() is the strict check (protobufjs' fromObject() would drop unknown keys silently).
  const pb = messageToPb(type, json, path);
  return type.encode(type.fromObject(pb)).finish();
}

/** Encode a proto3-JSON resource (e.g. a Listener) of the given full message name. */
export function encodeResource(typeName: string, json: JsonObject): Uint8Array {
  return encodeWith(lookupType(typeName, ''), json, '');
}

// ---------------------------------------------------------------- decode (bytes → JSON)

function formatDuration(seconds: unknown, nanos: unknown): string {
  const s = BigInt(String(seconds ?? 0));
  const n = Number(nanos ?? 0);
  if (n === 0) return `${s}s`;
  const neg = s < 0n || n < 0;
  const abs = (neg ? -s : s).toString();
  const frac = String(Math.abs(n)).padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${abs}.${frac}s`;
}

function valueToJson(v: Record<string, unknown>): Json {
  if ('struct_value' in v && v.struct_value) return structToJson(v.struct_value as Record<string, unknown>);
  if ('list_value' in v && v.list_value) return ((v.list_value as { values?: Record<string, unknown>[] }).values ?? []).map(valueToJson);
  if ('string_value' in v) return v.string_value as string;
  if ('number_value' in v) return v.number_value as number;
  if ('bool_value' in v) return v.bool_value as boolean;
  return null;
}

function structToJson(s: Record<string, unknown>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries((s.fields as Record<string, Record<string, unknown>>) ?? {})) out[k] = valueToJson(v);
  return out;
}

function pbToJson(type: protobuf.Type, obj: Record<string, unknown>): Json {
  switch (type.fullName) {
    case '.google.protobuf.Duration':
      return formatDuration(obj.seconds, obj.nanos);
    case '.google.protobuf.Struct':
      return structToJson(obj);
    case '.google.protobuf.Value':
      return valueToJson(obj);
    case '.google.protobuf.Empty':
      return {};
    case '.google.protobuf.Any': {
      const url = String(obj.type_url ?? '');
      const inner = lookupType(url.slice(url.lastIndexOf('/') + 1), '@type');
      const bytes = typeof obj.value === 'string' ? Buffer.from(obj.value, 'base64') : (obj.value as Uint8Array | undefined) ?? new Uint8Array();
      return { '@type': url, ...(decodeWith(inner, bytes) as JsonObject) };
    }
  }
  if (WRAPPERS.has(type.fullName)) {
    const f = type.fields.value;
    return (obj.value as Json | undefined) ?? (f?.type === 'bool' ? false : f?.type === 'string' || f?.type === 'bytes' ? '' : f?.type.endsWith('64') ? '0' : 0);
  }
  const out: JsonObject = {};
  for (const [key, raw] of Object.entries(obj)) {
    const field = type.fields[key];
    if (!field || raw === undefined) continue;
    field.resolve();
    const rt = field.resolvedType;
    const one = (x: unknown): Json => (rt instanceof protobuf.Type ? pbToJson(rt, x as Record<string, unknown>) : (x as Json));
    if (field.map) out[key] = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, x]) => [k, one(x)]));
    else if (field.repeated) out[key] = (raw as unknown[]).map(one);
    else out[key] = one(raw);
  }
  return out;
}

function decodeWith(type: protobuf.Type, bytes: Uint8Array): Json {
  const msg = type.decode(bytes);
  const obj = type.toObject(msg, { longs: String, enums: String, bytes: String, defaults: false }) as Record<string, unknown>;
  return pbToJson(type, obj);
}

/** Decode the bytes of a resource back into proto3-JSON (Anys expanded with "@type"). */
export function decodeResource(typeName: string, bytes: Uint8Array): JsonObject {
  return decodeWith(lookupType(typeName, ''), bytes) as JsonObject;
}

/** `type.googleapis.com/envoy.config.listener.v3.Listener` → `envoy.config.listener.v3.Listener` */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.startsWith(TYPE_URL_PREFIX) ? typeUrl.slice(TYPE_URL_PREFIX.length) : typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
