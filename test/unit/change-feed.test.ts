/**
 * The change feed's configuration (DATABASE_LISTEN_URL, WATCH_POLL_INTERVAL_MS) and its
 * in-process wake-ups: a wake-up that arrives while the subscriber reads is kept, tenants are
 * woken separately, waiting claims sleep through events that free nothing, and closing the
 * feed ends every wait.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { ChangeFeed } from '../../src/services/change-feed.js';

const SERVER = 'postgresql://app:s3cret@pgbouncer.example.com:6432/tasks';

describe('change feed configuration', () => {
  it('listens on the DATABASE_URL server by default, every 1 s re-check when polling', () => {
    expect(loadConfig({ DATABASE_URL: SERVER }).changeFeed).toEqual({
      mode: 'listen',
      url: SERVER,
      pollIntervalMs: 1_000,
    });
  });

  it('takes a direct URL for LISTEN, or off to poll', () => {
    const direct = 'postgres://app:s3cret@db.example.com:5432/tasks';
    expect(loadConfig({ DATABASE_URL: SERVER, DATABASE_LISTEN_URL: direct }).changeFeed).toEqual({
      mode: 'listen',
      url: 'postgresql://app:s3cret@db.example.com:5432/tasks',
      pollIntervalMs: 1_000,
    });
    expect(
      loadConfig({ DATABASE_URL: SERVER, DATABASE_LISTEN_URL: 'OFF', WATCH_POLL_INTERVAL_MS: '250' }).changeFeed,
    ).toEqual({
      mode: 'poll',
      pollIntervalMs: 250,
    });
  });

  it('uses the pool’s own connection in embedded mode, whatever DATABASE_LISTEN_URL says', () => {
    expect(loadConfig({ DATABASE_URL: 'memory://', DATABASE_LISTEN_URL: SERVER }).changeFeed).toEqual({
      mode: 'embedded',
      pollIntervalMs: 1_000,
    });
  });

  it('names bad values without echoing them', () => {
    let error: unknown;
    try {
      loadConfig({
        DATABASE_URL: SERVER,
        DATABASE_LISTEN_URL: 'mysql://root:hunter2@x/y',
        WATCH_POLL_INTERVAL_MS: '10',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toContain('DATABASE_LISTEN_URL');
    expect(problems).toContain('WATCH_POLL_INTERVAL_MS: must be at least 50');
    expect(problems).not.toContain('hunter2');
    expect(() => loadConfig({ DATABASE_URL: SERVER, DATABASE_LISTEN_URL: 'memory://' })).toThrow(
      /DATABASE_LISTEN_URL: must be a postgres/,
    );
  });
});

describe('ChangeFeed', () => {
  it('keeps a wake-up that arrived between reset and wait', async () => {
    const feed = new ChangeFeed();
    const sub = feed.subscribe(1n);
    sub.reset();
    feed.notify(1n, false);
    expect(await sub.wait()).toBe('changed');
    // Consumed: the next wait needs a new one.
    expect(await sub.wait({ until: Date.now() + 20 })).toBe('timeout');
    sub.close();
    expect(feed.size).toBe(0);
  });

  it('wakes only the tenant named, and everybody for a tenant-less wake-up', async () => {
    const feed = new ChangeFeed();
    const one = feed.subscribe(1n);
    const two = feed.subscribe(2n);
    const waiting = two.wait({ until: Date.now() + 50 });
    feed.notify(1n);
    expect(await one.wait()).toBe('changed');
    expect(await waiting).toBe('timeout');
    const again = two.wait();
    feed.notify(null);
    expect(await again).toBe('changed');
  });

  it('lets waiting claims sleep through events that free no task', async () => {
    const feed = new ChangeFeed();
    const claim = feed.subscribe(1n, { claimsOnly: true });
    const stream = feed.subscribe(1n);
    feed.notify(1n, false);
    expect(await claim.wait({ until: Date.now() + 20 })).toBe('timeout');
    expect(await stream.wait()).toBe('changed');
    feed.notify(1n, true);
    expect(await claim.wait()).toBe('changed');
  });

  it('ends waits when their signal fires, and all of them when the feed closes', async () => {
    const feed = new ChangeFeed();
    const abort = new AbortController();
    const cancelled = feed.subscribe(1n).wait({ signal: abort.signal });
    abort.abort();
    expect(await cancelled).toBe('aborted');
    const open = feed.subscribe(1n).wait();
    feed.close();
    expect(await open).toBe('closed');
    expect(await feed.subscribe(1n).wait()).toBe('closed');
  });
});
