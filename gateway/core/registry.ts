import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError } from '../../lib/errors.js';
import { logger } from '../../lib/log.js';

// The single source of truth for backends. Drivers (HAProxy runtime API, Envoy xDS) subscribe to its
// 'change' events and make their proxy match; the admin API and health checker are its only writers.
// Every change bumps `version` and is persisted atomically, so a gateway restart resumes where it was.

export type EndpointState = 'active' | 'draining' | 'down';

export interface Endpoint {
  id: string;
  host: string;
  port: number;
  /** Relative share of new streams, 1..256 (HAProxy's range; Envoy's load_balancing_weight accepts it). */
  weight: number;
  /** active: takes new streams · draining: keeps its sessions, gets no new ones · down: failed health checks */
  state: EndpointState;
  /** Set while draining: when the backend is told to close what is left with 1001 (ms since epoch). */
  drainDeadline?: number;
  /** Set while draining on behalf of DELETE: the endpoint leaves the registry once drained. */
  removeAfterDrain?: boolean;
}

export type RegistryEvent =
  | { type: 'added'; endpoint: Endpoint; version: number }
  | { type: 'removed'; endpoint: Endpoint; version: number }
  | { type: 'updated'; endpoint: Endpoint; previous: Endpoint; version: number };

export class EndpointNotFoundError extends GatewayError {
  constructor(id: string) {
    super('GW_ERR_ENDPOINT_NOT_FOUND', `no endpoint with id "${id}"`);
  }
}

export class EndpointConflictError extends GatewayError {
  constructor(message: string) {
    super('GW_ERR_ENDPOINT_CONFLICT', message);
  }
}

/** The state file is there but is not one this registry wrote: refusing beats starting from a guess. */
class StateFileError extends GatewayError {
  constructor(file: string, problem: string | undefined) {
    super('GW_ERR_STATE_FILE', `${file} is not a valid registry state file: ${problem}; move it away to start from config`);
  }
}

export const endpointIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'letters, digits, "-" or "_", at most 32');
export const weightSchema = z.number().int().min(1).max(256);
/** `host:port`; loopback or any IPv4/hostname, port 1..65535. */
export const addressSchema = z
  .string()
  .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9104')
  .refine((a) => {
    const port = Number(a.slice(a.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'port must be 1..65535');

export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

const persistedSchema = z.object({
  version: z.number().int().nonnegative(),
  endpoints: z.array(
    z.object({
      id: endpointIdSchema,
      host: z.string(),
      port: z.number().int(),
      weight: weightSchema,
      state: z.enum(['active', 'draining', 'down']),
      drainDeadline: z.number().optional(),
      removeAfterDrain: z.boolean().optional(),
    }),
  ),
});

export interface RegistryOptions {
  /** JSON state file; absent → in-memory only (tests). */
  stateFile?: string;
  /** Used when there is no state file yet. */
  seed: ReadonlyArray<Pick<Endpoint, 'id' | 'host' | 'port'> & Partial<Pick<Endpoint, 'weight'>>>;
  log?: Logger;
}

export class EndpointRegistry extends EventEmitter {
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #stateFile: string | undefined;
  readonly #log: Logger;
  #version = 0;

  constructor(options: RegistryOptions) {
    super();
    this.#stateFile = options.stateFile;
    this.#log = options.log ?? logger('registry');
    if (!this.#load()) {
      for (const s of options.seed) this.#endpoints.set(s.id, { weight: 1, ...s, state: 'active' });
      this.#version = 1;
      this.#persist();
    }
  }

  get version(): number {
    return this.#version;
  }

  list(): Endpoint[] {
    return [...this.#endpoints.values()].map((e) => ({ ...e }));
  }

  get(id: string): Endpoint {
    const e = this.#endpoints.get(id);
    if (!e) throw new EndpointNotFoundError(id);
    return { ...e };
  }

  has(id: string): boolean {
    return this.#endpoints.has(id);
  }

  add(input: { id?: string; host: string; port: number; weight?: number }): Endpoint {
    const id = input.id ?? this.#nextId();
    if (this.#endpoints.has(id)) throw new EndpointConflictError(`endpoint "${id}" already exists`);
    const clash = [...this.#endpoints.values()].find((e) => e.host === input.host && e.port === input.port);
    if (clash) throw new EndpointConflictError(`${input.host}:${input.port} is already endpoint "${clash.id}"`);
    const endpoint: Endpoint = { id, host: input.host, port: input.port, weight: input.weight ?? 1, state: 'active' };
    this.#endpoints.set(id, endpoint);
    this.#commit({ type: 'added', endpoint: { ...endpoint }, version: 0 });
    return { ...endpoint };
  }

  remove(id: string): Endpoint {
    const endpoint = this.get(id);
    this.#endpoints.delete(id);
    this.#commit({ type: 'removed', endpoint, version: 0 });
    return endpoint;
  }

  update(id: string, patch: Partial<Pick<Endpoint, 'weight' | 'state' | 'drainDeadline' | 'removeAfterDrain'>>): Endpoint {
    const current = this.#endpoints.get(id);
    if (!current) throw new EndpointNotFoundError(id);
    const next: Endpoint = { ...current, ...patch };
    if (next.state !== 'draining') {
      delete next.drainDeadline;
      delete next.removeAfterDrain;
    }
    if (JSON.stringify(next) === JSON.stringify(current)) return { ...current };
    this.#endpoints.set(id, next);
    this.#commit({ type: 'updated', endpoint: { ...next }, previous: { ...current }, version: 0 });
    return { ...next };
  }

  #nextId(): string {
    for (let n = this.#endpoints.size + 1; ; n++) if (!this.#endpoints.has(`b${n}`)) return `b${n}`;
  }

  #commit(event: RegistryEvent): void {
    this.#version++;
    event.version = this.#version;
    this.#persist();
    this.#log.info({ event: event.type, endpoint: event.endpoint, version: this.#version }, `endpoint ${event.endpoint.id} ${event.type}`);
    this.emit('change', event);
  }

  #load(): boolean {
    if (!this.#stateFile) return false;
    let text: string;
    try {
      text = readFileSync(this.#stateFile, 'utf8');
    } catch {
      return false;
    }
    const parsed = persistedSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new StateFileError(this.#stateFile, parsed.error.issues[0]?.message);
    }
    this.#version = parsed.data.version;
    for (const e of parsed.data.endpoints) this.#endpoints.set(e.id, e);
    this.#log.info({ file: this.#stateFile, endpoints: this.#endpoints.size, version: this.#version }, 'registry restored from state file');
    return true;
  }

  /** Write-then-rename: a crash mid-write leaves the previous file intact. */
  #persist(): void {
    if (!this.#stateFile) return;
    mkdirSync(path.dirname(this.#stateFile), { recursive: true });
    const tmp = `${this.#stateFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ version: this.#version, endpoints: this.list() }, null, 2));
    renameSync(tmp, this.#stateFile);
  }
}
