// Loads Envoy's v3 API definitions (the .proto files that ship inside @grpc/grpc-js-xds) into one
// protobufjs Root, once per process. Everything the validator knows about Envoy comes from here:
// field names and types, enums, oneofs, and the protoc-gen-validate / Envoy annotations on them.
//
// The package ships four include roots under deps/: envoy-api, xds (udpa + xds annotations and
// types), protoc-gen-validate and googleapis. Imports are resolved across them in that order;
// google/protobuf/* comes from protobufjs' bundled copies (descriptor.proto from its google/ dir).
//
// A few Envoy files import third-party protos the package does not ship (OpenCensus, OpenTelemetry,
// Prometheus). Those files, and every file that imports them, are left out and listed in
// `excludedFiles`, so the validator can say "this type exists in Envoy but cannot be checked here"
// instead of pretending it does not exist.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import { logger } from '../../lib/log.js';
import { EnvoyConfigError } from './errors.js';

const log = logger('envoy-proto');

const INCLUDE_ROOT_NAMES = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'] as const;

export interface EnvoyApi {
  root: protobuf.Root;
  /** Absolute include roots, in resolution order. */
  includeRoots: string[];
  /** Proto files loaded (relative to their include root). */
  loadedFiles: string[];
  /** Files skipped because an import (transitively) is not shipped, with the missing import. */
  excludedFiles: Map<string, string>;
  /** Fully qualified message names declared in excluded files (best effort, from the file text). */
  excludedTypes: Set<string>;
  /** Version of @grpc/grpc-js-xds the protos came from. */
  packageVersion: string;
  loadMs: number;
}

let cached: EnvoyApi | undefined;

function depsDir(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('@grpc/grpc-js-xds/package.json');
  } catch (err) {
    throw new EnvoyConfigError(
      'cannot find @grpc/grpc-js-xds (it ships the Envoy v3 protos the validator needs); run npm ci',
      { cause: err },
    );
  }
  const version = (JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version?: string }).version ?? 'unknown';
  return { dir: path.join(path.dirname(pkgJson), 'deps'), version };
}

function walkProtos(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) walkProtos(p, out);
    else if (entry.name.endsWith('.proto')) out.push(p);
  }
  return out;
}

const IMPORT_RE = /^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm;
const PACKAGE_RE = /^\s*package\s+([\w.]+)\s*;/m;
const MESSAGE_RE = /^message\s+(\w+)\s*\{/gm;

/** Files protobufjs provides itself (bundled JSON) or that we map to its google/ directory. */
function bundledPath(target: string): string | null {
  if (target === 'google/protobuf/descriptor.proto') {
    const require = createRequire(import.meta.url);
    return path.join(path.dirname(require.resolve('protobufjs/package.json')), 'google/protobuf/descriptor.proto');
  }
  return null;
}

function isBundledCommon(target: string): boolean {
  const common = (protobuf as unknown as { common: Record<string, unknown> }).common;
  return Object.prototype.hasOwnProperty.call(common, target);
}

/**
 * The Envoy files worth loading: every v3 API file (the only major version a current Envoy accepts)
 * plus the annotation files. v2/v2alpha files are Envoy's removed API and are not loaded: a config
 * naming a v2 type is rejected, as a current Envoy would.
 */
function envoyEntryFiles(envoyRoot: string): string[] {
  return walkProtos(path.join(envoyRoot, 'envoy'))
    .map((f) => path.relative(envoyRoot, f).split(path.sep).join('/'))
    .filter((f) => /\/v3(alpha)?\//.test(f) || f.startsWith('envoy/annotations/'))
    .sort();
}

export function loadEnvoyApi(): EnvoyApi {
  if (cached) return cached;
  const started = performance.now();
  const { dir, version } = depsDir();
  const includeRoots = INCLUDE_ROOT_NAMES.map((r) => path.join(dir, r));
  for (const r of includeRoots) {
    if (!fs.existsSync(r)) throw new EnvoyConfigError(`Envoy proto include root missing: ${r}`);
  }

  const locate = (target: string): string | null => {
    const bundled = bundledPath(target);
    if (bundled) return bundled;
    for (const r of includeRoots) {
      const p = path.join(r, target);
      if (fs.existsSync(p)) return p;
    }
    return null;
  };

  // Import graph, so files whose closure needs something not shipped can be skipped up front
  // (protobufjs would otherwise fail the whole load on the first unresolved type).
  const importsOf = new Map<string, string[]>();
  const textOf = new Map<string, string>();
  const readImports = (rel: string): string[] => {
    let imports = importsOf.get(rel);
    if (imports) return imports;
    const abs = locate(rel);
    const text = abs ? fs.readFileSync(abs, 'utf8') : '';
    textOf.set(rel, text);
    imports = [...text.matchAll(IMPORT_RE)].map((m) => m[1]!).filter((i) => !isBundledCommon(i));
    importsOf.set(rel, imports);
    return imports;
  };
  const missingFor = new Map<string, string | null>();
  const firstMissing = (rel: string, stack: Set<string> = new Set()): string | null => {
    if (missingFor.has(rel)) return missingFor.get(rel)!;
    if (stack.has(rel)) return null;
    stack.add(rel);
    let result: string | null = null;
    if (!locate(rel)) result = rel;
    else {
      for (const imp of readImports(rel)) {
        const m = firstMissing(imp, stack);
        if (m) {
          result = m;
          break;
        }
      }
    }
    stack.delete(rel);
    missingFor.set(rel, result);
    return result;
  };

  const loadedFiles: string[] = [];
  const excludedFiles = new Map<string, string>();
  const excludedTypes = new Set<string>();
  for (const rel of envoyEntryFiles(includeRoots[0]!)) {
    const missing = firstMissing(rel);
    if (missing) {
      excludedFiles.set(rel, missing);
      const text = textOf.get(rel) ?? '';
      const pkg = PACKAGE_RE.exec(text)?.[1];
      if (pkg) for (const m of text.matchAll(MESSAGE_RE)) excludedTypes.add(`${pkg}.${m[1]}`);
    } else loadedFiles.push(rel);
  }
  // TypedStruct wrappers (a typed_config can carry one) live in the xds root.
  for (const extra of ['xds/type/v3/typed_struct.proto', 'udpa/type/v1/typed_struct.proto']) {
    if (locate(extra) && !firstMissing(extra)) loadedFiles.push(extra);
  }

  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target)) return target;
    const found = locate(target);
    // protobufjs skips a file when resolvePath returns null; its typings say string.
    return found ?? (null as unknown as string);
  };
  try {
    root.loadSync(loadedFiles, { keepCase: true });
    root.resolveAll();
  } catch (err) {
    throw new EnvoyConfigError(`cannot load the Envoy v3 protos from ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }

  const loadMs = Math.round(performance.now() - started);
  cached = { root, includeRoots, loadedFiles, excludedFiles, excludedTypes, packageVersion: version, loadMs };
  log.debug(
    { files: loadedFiles.length, excluded: excludedFiles.size, ms: loadMs, grpcJsXds: version },
    'loaded Envoy v3 API protos',
  );
  return cached;
}
