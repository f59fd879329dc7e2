// The dashboard's load button keeps its sessions through a drain, as SessionKeeper does: a session a
// drained backend closes with 1001 is opened again (through the front, on another backend).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LoadRunner } from '../gateway/admin/load.js';
import { describeEachFront } from './helpers/front-matrix.js';
import { startTestStack } from './helpers/stack.js';

describeEachFront('the load button through a drain', (front) => {
  let stack: Awaited<ReturnType<typeof startTestStack>>;
  beforeAll(async () => {
    stack = await startTestStack({ front, drainDeadlineMs: 1_000 });
  });
  afterAll(async () => stack?.dispose());

  it("reopens the sessions a drained backend closed (1001), so the load's count comes back", async () => {
    const load = new LoadRunner(stack.frontUrl);
    try {
      load.start({ sessions: 60, seconds: 40, transport: 'mixed' });
      await expect.poll(() => load.status().state, { timeout: 20_000 }).toBe('running');
      expect(load.status().open).toEqual({ h2: 30, h1: 30 });
      // b1 drains: past its 1 s deadline its sessions get 1001.
      const res = await stack.adminFetch('/endpoints/b1/drain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBeLessThan(300);
      await expect.poll(() => load.status().reopened, { timeout: 20_000 }).toBeGreaterThan(0);
      await expect.poll(() => load.status().open, { timeout: 20_000 }).toEqual({ h2: 30, h1: 30 });
      const s = load.status();
      console.info(`[load] ${front}: drain of b1 closed and reopened ${s.reopened} of 60 sessions; failed ${s.failed}`);
      expect(s.failed).toBe(0);
    } finally {
      await load.stop();
    }
  });
});
