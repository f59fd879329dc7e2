import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H1Client, MuxClient } from '../client/index.js';
import { SequencedEcho } from '../client/sequenced-echo.js';
import { SessionKeeper, type KeptSession } from '../client/session-keeper.js';
import { DEFAULT_TEMPLATE } from '../gateway/haproxy/front.js';
import { describeEachFront, type FrontName } from './helpers/front-matrix.js';
import { envoySkipReason } from './helpers/envoy.js';
import { sessionsByGeneration } from './helpers/generations.js';
import { echo, jsonInbox, sleep, startTestStack, waitUntil } from './helpers/stack.js';

// Hot restart of the real front under load, once per front (HAProxy master-worker reload, Envoy
// epochs under the restarter): measured, not asserted from the docs. Which generation carries a
// session is asked of the kernel (helpers/generations.ts), the same way for both fronts.

/** What each front's run measured, printed once at the end for the README. */
interface Numbers {
  reopened: number;
  reopenAttemptsFailed: number;
  echoesLost: number;
  chatLost: number;
  chatDuplicated: number;
  /** Chat messages written into a connection as the old generation cut it, which never reached the room. */
  chatSendsCut: number;
  newSessionsFailed: number;
}
const measured = new Map<FrontName, Numbers>();
const numbersOf = (front: FrontName) => {
  if (!measured.has(front)) measured.set(front, { reopened: 0, reopenAttemptsFailed: 0, echoesLost: 0, chatLost: 0, chatDuplicated: 0, chatSendsCut: 0, newSessionsFailed: 0 });
  return measured.get(front)!;
};
afterAll(() => {
  for (const [front, n] of measured) {
    console.log(
      `[hot-restart] ${front}: sessions reopened ${n.reopened} (failed reopen attempts ${n.reopenAttemptsFailed}), echoes lost ${n.echoesLost}, ` +
        `chat messages lost ${n.chatLost} / duplicated ${n.chatDuplicated} (sends cut before reaching the room, sent again: ${n.chatSendsCut}), ` +
        `new sessions failed ${n.newSessionsFailed}`,
    );
  }
});

describeEachFront('hot restart under load', (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front: frontName, roomBus: 'none', hardStopAfterS: 120 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('1,000 h2 streams + 200 h1 sessions echo through two restarts: nothing lost, new sessions on the new generation', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    const load = new SequencedEcho(50);
    let failedNewSessions = 0;
    const freshByGeneration: Array<{ generation: number; h2: Record<string, number>; h1: Record<string, number>; next: Record<string, number> }> = [];
    try {
      const [h2s, h1s] = await Promise.all([
        Promise.all(Array.from({ length: 1000 }, () => mux.open('/echo'))),
        Promise.all(Array.from({ length: 200 }, () => h1.open('/echo'))),
      ]);
      const first = [...h2s, ...h1s];
      first.forEach((s) => load.add(s));
      load.start();
      expect(await sessionsByGeneration(stack, first)).toEqual({ 1: 1200 });

      const frontTotals = async () => (await (await stack.adminFetch('/front')).json()) as { connectionsTotal: number; sessionsTotal: number };
      const totalsBefore = await frontTotals();
      expect(totalsBefore.sessionsTotal).toBeGreaterThanOrEqual(1200);
      for (const round of [1, 2]) {
        await sleep(1_000);
        const response = await stack.adminFetch(`/hot-restart`, { method: 'POST' });
        if (frontName === 'envoy' && round === 2) {
          // Envoy keeps two epochs at most: a third would make epoch 1 stop epoch 0 at once and cut
          // the 1,200 sessions it still drains (measured: 1,146 echoes lost). The restarter refuses
          // instead, until the draining epoch has left (hardStopAfterS, 120 s here).
          expect(response.status).toBe(409);
          expect(((await response.json()) as { error: { code: string } }).error.code).toBe('GW_ERR_ENVOY_EPOCH_DRAINING');
          continue;
        }
        const result = await response.json();
        expect(result).toMatchObject({ engine: frontName, generation: round + 1 });
        expect(result.newPids).toHaveLength(1);
        // New sessions, both transports, right after the restart: every one must open and echo.
        const open = async (client: MuxClient | H1Client, n: number) => {
          const settled = await Promise.allSettled(Array.from({ length: n }, () => client.open('/echo')));
          failedNewSessions += settled.filter((f) => f.status === 'rejected').length;
          const opened = settled.flatMap((f) => (f.status === 'fulfilled' ? [f.value] : []));
          opened.forEach((s) => load.add(s));
          return opened;
        };
        const [freshH2, freshH1] = await Promise.all([open(mux, 50), open(h1, 20)]);
        // And one more HTTP/2 session once that batch is open.
        const next = await open(mux, 1);
        freshByGeneration.push({
          generation: round + 1,
          h2: await sessionsByGeneration(stack, freshH2),
          h1: await sessionsByGeneration(stack, freshH1),
          next: await sessionsByGeneration(stack, next),
        });
      }
      await sleep(1_000);
      await load.quiesce(10_000);
      // "Since the front started" survives the restarts: the new generation's counters start again,
      // the gateway adds back what the old one had counted.
      const totalsAfter = await frontTotals();
      // (Never back to 0; not exactly +71 on Envoy, whose child epoch merges its parent's counters on its own schedule.)
      expect(totalsAfter.sessionsTotal).toBeGreaterThan(totalsBefore.sessionsTotal);
      expect(totalsAfter.connectionsTotal).toBeGreaterThanOrEqual(totalsBefore.connectionsTotal);

      const totals = load.totals();
      numbersOf(frontName).echoesLost += totals.lost;
      numbersOf(frontName).newSessionsFailed += failedNewSessions;
      console.info(`[hot-restart] ${frontName}: ${JSON.stringify(totals)}; new sessions by generation after each restart: ${JSON.stringify(freshByGeneration)}`);
      expect(failedNewSessions).toBe(0);
      expect(totals.outOfOrder).toBe(0);
      expect(totals.inFlight).toBe(0);
      expect(totals.echoed).toBeGreaterThan(1342 * 10);
      for (const { generation, h2, h1: viaH1, next } of freshByGeneration) {
        // New TCP connections are accepted by the new generation, with either front.
        expect(viaH1).toEqual({ [generation]: 20 });
        expect(next).toEqual({ [generation]: 1 });
        if (frontName === 'haproxy') {
          // The old worker sends GOAWAY as soon as it stops listening: the batch goes to the new one.
          expect(h2).toEqual({ [generation]: 50 });
        } else {
          // An old Envoy epoch sends GOAWAY only in answer to a request on the connection (its drain
          // decision is taken per request, even with --drain-strategy immediate; measured): the batch
          // opened on the existing HTTP/2 connection right after a restart may still go to the old
          // epoch, which then answers with GOAWAY, and the next session goes to the new one.
          expect(Object.keys(h2).every((g) => g === String(generation) || g === String(generation - 1)), JSON.stringify(h2)).toBe(true);
          expect(Object.values(h2).reduce((a, b) => a + b, 0)).toBe(50);
        }
      }

      const closedTallies = load.tallies.filter((t) => t.closeCode !== undefined);
      const generations = (await stack.hotRestart.generations()).map((g) => g.generation).sort();
      if (frontName === 'haproxy') {
        // Three generations are alive: the old ones still hold their sessions, nothing closed or lost.
        expect(generations).toEqual([1, 2, 3]);
        expect(closedTallies).toHaveLength(0);
        expect(totals.lost).toBe(0);
        expect(totals.open).toBe(1200 + 142);
        expect(await sessionsByGeneration(stack, first)).toEqual({ 1: 1200 });
      } else {
        // One restart went through (the second was refused): generations 1 and 2, nothing closed or lost.
        expect(generations).toEqual([1, 2]);
        expect(closedTallies).toHaveLength(0);
        expect(totals.lost).toBe(0);
        expect(totals.open).toBe(1200 + 71);
      }

      load.stop();
      await Promise.all([mux.close(), h1.close()]);
      if (frontName === 'haproxy') {
        // An old HAProxy worker exits once its sessions close (hard-stop-after, 120 s here, is not what ends it).
        await waitUntil(async () => (await stack.hotRestart.generations()).length === 1, 15_000, 'old workers exit');
      } else {
        // An old Envoy epoch does not leave when its connections are gone: it is told to exit by the
        // newer epoch when --parent-shutdown-time-s (hardStopAfterS, 120 s here) has passed (measured).
        await waitUntil(async () => (await stack.front.counts()).connections === 0, 15_000, 'every client connection closed');
        expect((await stack.hotRestart.generations()).map((g) => g.generation).sort()).toEqual([1, 2]);
      }
    } finally {
      load.stop();
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});

describeEachFront('hard-stop-after: the old generation closes what it holds, the client (SessionKeeper) reopens all of it', (frontName) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    // A room's history must cover the whole run, so a reopened member can recover what it missed.
    stack = await startTestStack({ front: frontName, hardStopAfterS: 2, roomHistory: 10_000 });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('reopens exactly as many sessions as were closed', async () => {
    const mux = new MuxClient(stack.frontUrl);
    const keeper = new SessionKeeper(mux, { initialBackoffMs: 50, maxBackoffMs: 1_000 });
    let closed = 0;
    try {
      const kept = await Promise.all(Array.from({ length: 150 }, () => keeper.keep('/echo')));
      kept.forEach((k) => k.on('down', () => closed++));
      const { generation } = await stack.hotRestart.restart();
      // The old generation holds all 150 until hard-stop-after (2 s) stops it.
      await waitUntil(() => closed === 150, 10_000, 'old generation closes its sessions');
      await waitUntil(() => keeper.stats().open === 150, 10_000, 'client reopens them');
      expect(keeper.stats()).toMatchObject({ kept: 150, open: 150, reopened: closed, gaveUp: 0 });
      numbersOf(frontName).reopened += keeper.stats().reopened;
      numbersOf(frontName).reopenAttemptsFailed += keeper.stats().failedAttempts;
      // Reopened sessions work, on the new generation's connection.
      for (const k of kept.slice(0, 10)) expect(await echo(k.current!.ws, 'after')).toBe('after');
      expect(mux.stats().connections).toBe(1);
      expect(await sessionsByGeneration(stack, kept.map((k) => k.current!))).toEqual({ [generation]: 150 });
    } finally {
      keeper.close();
      await mux.close();
    }
  });

  it('chat across it: every member receives every message exactly once (recovered by offset)', async () => {
    const room = `restart-${frontName}-${Date.now().toString(36)}`;
    const mux = new MuxClient(stack.frontUrl);
    const h1 = new H1Client(stack.frontUrl);
    const keepers = [mux, h1].map((c) => new SessionKeeper(c, { initialBackoffMs: 50, maxBackoffMs: 1_000, maxAttempts: 40 }));
    let stopSending = false;
    let sender: Promise<void> | undefined;
    try {
      const members: KeptSession[] = [
        ...(await Promise.all(Array.from({ length: 20 }, () => keepers[0]!.keep(`/chat/${room}`)))),
        ...(await Promise.all(Array.from({ length: 10 }, () => keepers[1]!.keep(`/chat/${room}`)))),
      ];
      /** The room messages each member received (by offset), duplicates included. */
      const received = members.map((k) => {
        const offsets: string[] = [];
        k.on('message', (d) => {
          const m = JSON.parse(d.toString());
          if (m.type === 'message') offsets.push(m.offset);
        });
        return offsets;
      });
      let down = 0;
      members.forEach((k) => k.on('down', () => down++));

      // Members take turns sending; each message waits until the room echoes it to its sender (or
      // the sender goes down) before the next, so at most one is in flight.
      const texts: string[] = [];
      const unconfirmed: string[] = [];
      const send = async (text: string): Promise<boolean> => {
        for (const deadline = Date.now() + 15_000; ; ) {
          const open = members.filter((k) => k.isOpen);
          const from = open[texts.length % Math.max(1, open.length)];
          if (!from?.send(JSON.stringify({ text }))) {
            if (Date.now() > deadline) return false;
            await sleep(20);
            continue;
          }
          return new Promise<boolean>((resolve) => {
            const onMessage = (d: Buffer) => {
              if (d.toString().includes(`"text":"${text}"`)) finish(true);
            };
            const onDown = () => finish(false);
            const timer = setTimeout(() => finish(false), 5_000);
            const finish = (echoed: boolean) => {
              clearTimeout(timer);
              from.off('message', onMessage);
              from.off('down', onDown);
              resolve(echoed);
            };
            from.on('message', onMessage);
            from.on('down', onDown);
          });
        }
      };
      sender = (async () => {
        while (!stopSending) {
          const text = `${room} #${texts.length}`;
          texts.push(text);
          if (!(await send(text))) unconfirmed.push(text);
        }
      })();

      await waitUntil(() => texts.length >= 50, 10_000, 'messages before the restart');
      await stack.hotRestart.restart();
      await waitUntil(() => down >= members.length, 10_000, 'the old generation closes every member');
      await waitUntil(() => members.every((k) => k.isOpen), 15_000, 'every member reopened');
      const afterReopen = texts.length;
      await waitUntil(() => texts.length >= afterReopen + 50, 10_000, 'messages after the reopen');
      stopSending = true;
      await sender;

      /** The room's own record (its Redis Stream), read back through the front by a fresh member from the start of history; its own join notice comes after the replay. */
      const readRoom = async () => {
        const probeClient = new MuxClient(stack.frontUrl);
        try {
          const inbox = jsonInbox((await probeClient.open(`/chat/${room}?since=0-0`)).ws);
          const { member } = await inbox.next('welcome');
          await waitUntil(() => inbox.all.some((m) => m.type === 'join' && m.from === member), 10_000, 'the probe replays the room');
          return inbox.all.filter((m) => m.type === 'message') as Array<{ offset: string; text: string }>;
        } finally {
          await probeClient.close();
        }
      };
      // A message written into a connection as the old generation cut it never reached the room, and
      // the room has no send acknowledgement: its sender, having checked the room's record, sends it again.
      const taken = new Set((await readRoom()).map((m) => m.text));
      const neverReachedRoom = unconfirmed.filter((t) => !taken.has(t));
      for (const text of neverReachedRoom) expect(await send(text), text).toBe(true);
      const published = await readRoom();
      expect(published.map((m) => m.text).sort()).toEqual([...texts].sort());

      await waitUntil(() => received.every((r) => new Set(r).size >= published.length), 15_000, 'every member has every message').catch(() => {});
      await sleep(300); // a duplicate would arrive right behind
      let lost = 0;
      let duplicated = 0;
      const publishedOffsets = new Set(published.map((m) => m.offset));
      for (const r of received) {
        const got = new Set(r);
        lost += [...publishedOffsets].filter((o) => !got.has(o)).length;
        duplicated += r.length - got.size;
        expect(r.every((o) => publishedOffsets.has(o))).toBe(true);
      }
      const stats = keepers.map((k) => k.stats());
      const reopened = stats.reduce((n, s) => n + s.reopened, 0);
      numbersOf(frontName).reopened += reopened;
      numbersOf(frontName).reopenAttemptsFailed += stats.reduce((n, s) => n + s.failedAttempts, 0);
      numbersOf(frontName).chatLost += lost;
      numbersOf(frontName).chatDuplicated += duplicated;
      numbersOf(frontName).chatSendsCut += neverReachedRoom.length;
      console.info(
        `[hot-restart] ${frontName} chat: ${members.length} members (20 h2, 10 h1), ${published.length} messages, ${reopened} sessions reopened, ` +
          `${lost} lost, ${duplicated} duplicated; ${unconfirmed.length} not echoed to their sender before it went down, ` +
          `${neverReachedRoom.length} of them never reached the room (sent again)`,
      );
      expect(reopened).toBe(members.length);
      expect(lost).toBe(0);
      expect(duplicated).toBe(0);
    } finally {
      stopSending = true;
      await sender;
      keepers.forEach((k) => k.close());
      await Promise.all([mux.close(), h1.close()]);
    }
  });
});

describe('HAProxy only: a reload with a broken config is refused, names the problem, and the running generation keeps serving', () => {
  // HAProxy's config is rendered from a template the operator may edit, and checked (`haproxy -c`) before
  // every reload. (Envoy's equivalent, `envoy --mode validate` before every epoch, is below.)
  it('refuses with GW_ERR_HAPROXY_CONFIG', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-tmpl-'));
    const template = path.join(dir, 'haproxy.cfg.tmpl');
    copyFileSync(DEFAULT_TEMPLATE, template);
    const broken = await startTestStack({ front: 'haproxy', haproxyTemplate: template });
    try {
      const mux = new MuxClient(broken.frontUrl);
      const s = await mux.open('/echo');
      const before = await broken.hotRestart.generations();
      writeFileSync(template, readFileSync(template, 'utf8').replace('{{balance}}', '{{balance}}\n    frobnicate yes'));
      const res = await broken.adminFetch(`/hot-restart`, { method: 'POST' });
      expect(res.status).toBe(409);
      const body = await res.json();
      expect(body.error.code).toBe('GW_ERR_HAPROXY_CONFIG');
      expect(body.error.message).toMatch(/frobnicate/);
      expect((await broken.hotRestart.generations()).map((g) => g.pid)).toEqual(before.map((g) => g.pid));
      expect(await echo(s.ws, 'still here')).toBe('still here');
      const again = await mux.open('/echo');
      expect(await echo(again.ws, 'new session')).toBe('new session');
      await mux.close();
    } finally {
      await broken.dispose();
    }
  });
});

const envoySkip = envoySkipReason('hot-restart.test: Envoy only');
describe.skipIf(envoySkip !== undefined)('Envoy only: a hot restart with a bootstrap envoy --mode validate rejects is refused, and the running epoch keeps serving', () => {
  // The gateway renders Envoy's bootstrap once at start (<stateDir>/envoy/envoy-local-ads.yaml; the
  // rest comes over xDS, where Envoy itself refuses a bad resource). The restarter re-reads that file
  // for every new epoch and runs `envoy --mode validate` on it first: an edit Envoy rejects must not
  // start an epoch (one that failed to start would take the whole front down).
  it('refuses with GW_ERR_ENVOY_CONFIG_REJECTED and Envoy\'s words', async () => {
    const stack = await startTestStack({ front: 'envoy', roomBus: 'none' });
    const bootstrap = path.join(stack.config.stateDir, 'envoy', 'envoy-local-ads.yaml');
    const good = readFileSync(bootstrap, 'utf8');
    const mux = new MuxClient(stack.frontUrl);
    try {
      const s = await mux.open('/echo');
      const before = await stack.hotRestart.generations();
      writeFileSync(bootstrap, good.replace(/^admin:/m, 'frobnicate: yes\nadmin:'));
      const res = await stack.adminFetch(`/hot-restart`, { method: 'POST' });
      expect(res.status).toBe(409);
      const body = await res.json();
      expect(body.error.code).toBe('GW_ERR_ENVOY_CONFIG_REJECTED');
      expect(body.error.message).toMatch(/frobnicate/);
      expect((await stack.hotRestart.generations()).map((g) => g.pid)).toEqual(before.map((g) => g.pid));
      expect(await echo(s.ws, 'still here')).toBe('still here');
      const again = await mux.open('/echo');
      expect(await echo(again.ws, 'new session')).toBe('new session');
      // The file fixed, the next restart goes through.
      writeFileSync(bootstrap, good);
      expect(await (await stack.adminFetch(`/hot-restart`, { method: 'POST' })).json()).toMatchObject({ engine: 'envoy', generation: 2 });
    } finally {
      await mux.close();
      await stack.dispose();
    }
  });
});
