import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../lib/deadline-queue.js';

// Fake timers and a fake performance.now(): the queue's clock and its timer move together, only
// when the test says so.

function recorder(log: string[], name: string, then?: () => void) {
  return {
    onDeadline() {
      log.push(name);
      then?.();
    },
  };
}

describe('DeadlineQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls each deadline once, at its time, in the order they were set; then holds no timer', () => {
    const queue = new DeadlineQueue(100);
    const log: string[] = [];
    queue.add(recorder(log, 'a'));
    vi.advanceTimersByTime(40);
    queue.add(recorder(log, 'b'));
    expect(queue.pending).toBe(2);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(59);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(['a']);
    vi.advanceTimersByTime(39);
    expect(log).toEqual(['a']);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(['a', 'b']);
    expect(queue.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never calls a cancelled deadline; with none left the timer goes', () => {
    const queue = new DeadlineQueue(100);
    const log: string[] = [];
    const a = queue.add(recorder(log, 'a'));
    const b = queue.add(recorder(log, 'b'));
    queue.cancel(a);
    queue.cancel(a); // twice: no effect
    expect(queue.pending).toBe(1);
    queue.cancel(b);
    expect(queue.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    queue.add(recorder(log, 'c'));
    queue.cancel(a); // a ticket from before the queue emptied: still no effect
    expect(queue.pending).toBe(1);
    vi.advanceTimersByTime(100);
    expect(log).toEqual(['c']);
  });

  it('skips a cancelled head and calls the live deadline behind it at its own time', () => {
    const queue = new DeadlineQueue(100);
    const log: string[] = [];
    const a = queue.add(recorder(log, 'a'));
    vi.advanceTimersByTime(30);
    queue.add(recorder(log, 'b'));
    queue.cancel(a);
    vi.advanceTimersByTime(99);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(['b']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('lets a deadline add and cancel others while it runs', () => {
    const queue = new DeadlineQueue(100);
    const log: string[] = [];
    let b = -1;
    queue.add(
      recorder(log, 'a', () => {
        queue.cancel(b);
        queue.add(recorder(log, 'c'));
      }),
    );
    vi.advanceTimersByTime(10);
    b = queue.add(recorder(log, 'b'));
    vi.advanceTimersByTime(90);
    expect(log).toEqual(['a']);
    expect(queue.pending).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(100);
    expect(log).toEqual(['a', 'c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps tickets right once expired slots are dropped from the front', () => {
    const queue = new DeadlineQueue(100);
    const log: string[] = [];
    for (let i = 0; i < 3_000; i++) queue.add(recorder(log, 'early'));
    vi.advanceTimersByTime(50);
    queue.add(recorder(log, 'y'));
    const z = queue.add(recorder(log, 'z'));
    vi.advanceTimersByTime(50); // the 3,000 expire; y and z are still ahead
    expect(log.length).toBe(3_000);
    queue.cancel(z);
    expect(queue.pending).toBe(1);
    vi.advanceTimersByTime(50);
    expect(log.slice(3_000)).toEqual(['y']);
    expect(queue.pending).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
