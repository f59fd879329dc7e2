import type { FrontCounts } from '../admin/api.js';
import type { HotRestartEngine } from './hot-restart.js';

/**
 * The front's cumulative counts, kept rising across hot restarts and front restarts: a new HAProxy
 * worker (or an Envoy whose parent has gone) starts its counters again, so "since the front
 * started" would fall back towards 0. Every fall is added back; totals only ever grow.
 */
export function totalsAcrossRestarts(read: () => Promise<FrontCounts>): () => Promise<FrontCounts> {
  let last = { connections: 0, sessions: 0 };
  let lost = { connections: 0, sessions: 0 };
  return async () => {
    const now = await read();
    lost = {
      connections: lost.connections + Math.max(0, last.connections - now.connectionsTotal),
      sessions: lost.sessions + Math.max(0, last.sessions - now.sessionsTotal),
    };
    last = { connections: now.connectionsTotal, sessions: now.sessionsTotal };
    return { ...now, connectionsTotal: now.connectionsTotal + lost.connections, sessionsTotal: now.sessionsTotal + lost.sessions };
  };
}

/**
 * A hot-restart engine that reads the front's counts just before and just after each restart, so
 * totalsAcrossRestarts sees the old generation's last totals and the new one's fresh start, even
 * when nobody was polling (a later reading alone could not tell a restart from no traffic).
 */
export function sampledAroundRestarts(engine: HotRestartEngine, sample: () => Promise<unknown>): HotRestartEngine {
  const quietly = () => sample().catch(() => undefined);
  return {
    engine: engine.engine,
    generations: () => engine.generations(),
    restart: async () => {
      await quietly();
      try {
        return await engine.restart();
      } finally {
        await quietly();
      }
    },
  };
}
