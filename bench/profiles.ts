import type { RouteName, ScenarioName } from './result.js';

// How big and how long each scenario is. Everything is bounded: counts, durations and timeouts.
// `quick` (CI smoke, about a minute) exercises every scenario but scale with small numbers, via
// HAProxy, via Envoy and direct; `full` runs every route in every scenario and is what the README
// numbers come from.

export interface Profile {
  name: 'quick' | 'full';
  routes: RouteName[];
  scenarios: ScenarioName[];
  /** Alternated A/B repetitions per group (plus one A/A run). */
  reps: number;
  storm: { ns: number[]; concurrency: number; handshakeTimeoutMs: number; deadlineMs: number };
  latency: { sizes: number[]; ratePerS: Record<number, number>; sessions: number; durationMs: number; warmupMs: number; drainMs: number };
  /**
   * burst keeps min(burstWindow, burstBytes / size) messages in flight per session. The byte cap
   * matters: with HAProxy 2.6 and `proto h2` upstream, 100 sessions each keeping 128 KiB in flight
   * (8 × 16 KiB) stalled to zero echoes and the stuck streams outlived the client (see docs/bench.md).
   */
  throughput: {
    sizes: number[];
    modes: Array<'single' | 'burst'>;
    burstWindow: number;
    burstBytes: number;
    sessions: number;
    durationMs: number;
    warmupMs: number;
    drainMs: number;
  };
  fanout: { members: number[]; messages: number; intervalMs: number; routes: RouteName[] };
  idle: { n: number; settleMs: number };
  scale: { routes: Array<{ route: RouteName; steps: number[] }>; stepTimeoutMs: number };
  /** Streams per connection on the HTTP/2-upstream fronts, HAProxy and Envoy (must exceed the largest scale step). */
  h2upStreams: number;
}

export const QUICK: Profile = {
  name: 'quick',
  // The bare-ws floor (`reference`) runs in the full profile, or with --routes direct,reference.
  // Each front as its stack runs by default: HAProxy with HTTP/1.1 upstream, Envoy with HTTP/2.
  routes: ['front', 'envoy-h2up', 'direct'],
  scenarios: ['storm', 'latency', 'throughput', 'fanout', 'idle'],
  reps: 1,
  storm: { ns: [100, 1000], concurrency: 1000, handshakeTimeoutMs: 5_000, deadlineMs: 10_000 },
  latency: { sizes: [32], ratePerS: { 32: 2000, 1024: 2000, 16384: 500 }, sessions: 20, durationMs: 600, warmupMs: 200, drainMs: 2_000 },
  throughput: { sizes: [1024], modes: ['single', 'burst'], burstWindow: 16, burstBytes: 65_536, sessions: 20, durationMs: 600, warmupMs: 150, drainMs: 2_000 },
  fanout: { members: [20], messages: 5, intervalMs: 20, routes: ['front', 'envoy-h2up', 'direct'] },
  idle: { n: 200, settleMs: 100 },
  scale: { routes: [], stepTimeoutMs: 30_000 },
  h2upStreams: 60_000,
};

export const FULL: Profile = {
  name: 'full',
  routes: ['front', 'front-h2up', 'envoy', 'envoy-h2up', 'direct', 'reference'],
  scenarios: ['storm', 'latency', 'throughput', 'fanout', 'idle', 'scale'],
  reps: 2,
  storm: { ns: [100, 1000, 10_000], concurrency: 1000, handshakeTimeoutMs: 10_000, deadlineMs: 45_000 },
  latency: {
    sizes: [32, 1024, 16384],
    // Fixed offered rates, the same for every path; well below saturation for all of them.
    ratePerS: { 32: 4000, 1024: 4000, 16384: 1000 },
    sessions: 100,
    durationMs: 3_000,
    warmupMs: 500,
    drainMs: 5_000,
  },
  throughput: {
    sizes: [32, 1024, 16384],
    modes: ['single', 'burst'],
    burstWindow: 16,
    burstBytes: 65_536,
    sessions: 100,
    durationMs: 2_000,
    warmupMs: 300,
    drainMs: 5_000,
  },
  fanout: { members: [100, 500], messages: 20, intervalMs: 50, routes: ['front', 'front-h2up', 'envoy', 'envoy-h2up', 'direct'] },
  idle: { n: 2000, settleMs: 500 },
  scale: {
    routes: [
      // HTTP/1.1 upstream: one upstream socket per session, so HAProxy's fd limit binds near 18k.
      { route: 'front', steps: [10_000, 20_000] },
      // HTTP/2 upstream: sessions share upstream connections.
      { route: 'front-h2up', steps: [10_000, 25_000, 50_000] },
      // Envoy, HTTP/1.1 upstream: one upstream socket per session too, and Envoy aborts when its file
      // descriptors run out, so the scenario takes it to its budget (about 19,000 of 20,000) and stops.
      { route: 'envoy', steps: [10_000, 20_000] },
      // The product's default stack; the target is 100,000 sessions on one client connection.
      { route: 'envoy-h2up', steps: [10_000, 25_000, 50_000, 100_000] },
    ],
    stepTimeoutMs: 120_000,
  },
  h2upStreams: 110_000,
};
