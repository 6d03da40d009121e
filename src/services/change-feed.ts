/**
 * In-process wake-ups for WatchTasks streams and ClaimTask's long poll. The database listener
 * (src/db/change-listener.ts) reports "tenant N may have new events" (or "anything may have
 * changed"); each waiting call holds a Subscription and re-reads the database when woken.
 * Nobody holds a database connection while waiting.
 *
 * A subscription is registered BEFORE its owner reads, and a wake-up that arrives while the
 * read runs is kept (`pending`), so nothing that commits between the read and the wait can be
 * slept through.
 */

export type WaitOutcome = 'changed' | 'timeout' | 'aborted' | 'closed';

export interface WaitOptions {
  /** Stops the wait (the call was cancelled or its deadline passed). */
  readonly signal?: AbortSignal;
  /** Epoch milliseconds after which the wait ends with 'timeout'. */
  readonly until?: number;
}

export class Subscription {
  private pending = false;
  private wake: ((outcome: WaitOutcome) => void) | null = null;

  constructor(
    readonly tenantId: bigint,
    /** Woken only by changes that may have made a task claimable (a waiting ClaimTask). */
    readonly claimsOnly: boolean,
    private readonly feed: ChangeFeed,
  ) {}

  /** Forgets wake-ups so far: call right before reading. */
  reset(): void {
    this.pending = false;
  }

  /**
   * Resolves when a change of the tenant was reported since the last reset (at once if one
   * already was), when `until` passes, when `signal` fires, or when the feed closes.
   */
  wait(options: WaitOptions = {}): Promise<WaitOutcome> {
    if (this.feed.closed) return Promise.resolve('closed');
    if (options.signal?.aborted) return Promise.resolve('aborted');
    if (this.pending) {
      this.pending = false;
      return Promise.resolve('changed');
    }
    const delay = options.until === undefined ? undefined : options.until - Date.now();
    if (delay !== undefined && delay <= 0) return Promise.resolve('timeout');
    return new Promise<WaitOutcome>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => finish('aborted');
      const finish = (outcome: WaitOutcome) => {
        this.wake = null;
        this.pending = false;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      this.wake = finish;
      if (delay !== undefined) timer = setTimeout(() => finish('timeout'), delay);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** @internal called by the feed. */
  notify(outcome: 'changed' | 'closed'): void {
    if (this.wake) this.wake(outcome);
    else if (outcome === 'changed') this.pending = true;
  }

  close(): void {
    this.feed.unsubscribe(this);
    this.wake?.('closed');
  }
}

export class ChangeFeed {
  private readonly byTenant = new Map<bigint, Set<Subscription>>();
  private isClosed = false;

  get closed(): boolean {
    return this.isClosed;
  }

  /** Subscribers, for tests and metrics. */
  get size(): number {
    let n = 0;
    for (const set of this.byTenant.values()) n += set.size;
    return n;
  }

  subscribe(tenantId: bigint, options: { claimsOnly?: boolean } = {}): Subscription {
    const sub = new Subscription(tenantId, options.claimsOnly ?? false, this);
    let set = this.byTenant.get(tenantId);
    if (!set) {
      set = new Set();
      this.byTenant.set(tenantId, set);
    }
    set.add(sub);
    return sub;
  }

  /** @internal */
  unsubscribe(sub: Subscription): void {
    const set = this.byTenant.get(sub.tenantId);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) this.byTenant.delete(sub.tenantId);
  }

  /**
   * Something of `tenantId` may have changed (null: of anyone); `claimable`: possibly so that a
   * task became claimable.
   */
  notify(tenantId: bigint | null, claimable = true): void {
    const sets =
      tenantId === null ? [...this.byTenant.values()] : [this.byTenant.get(tenantId) ?? new Set<Subscription>()];
    for (const set of sets) {
      for (const sub of [...set]) if (claimable || !sub.claimsOnly) sub.notify('changed');
    }
  }

  /** Ends every wait now and every future one at once (server shutdown). */
  close(): void {
    this.isClosed = true;
    for (const set of this.byTenant.values()) for (const sub of [...set]) sub.notify('closed');
  }
}
