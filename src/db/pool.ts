import pg from 'pg';
import type { Logger } from '../logger.js';
import { TYPE_PARSERS } from './timestamps.js';

export interface PoolOptions {
  readonly connectionString: string;
  readonly max: number;
  readonly idleTimeoutMs: number;
  readonly connectionTimeoutMs: number;
  readonly maxLifetimeSeconds: number;
}

/**
 * A pg Pool that can never crash the process: an idle client whose server goes away emits
 * 'error' on the pool, a checked-out one on the client itself (docs/stack-notes.md), and both are logged
 * and left for the pool to discard. There is no pre-ping in pg; keepAlive, an idle timeout and
 * a maximum lifetime keep connections fresh, and the transaction runner retries a transaction
 * whose very first statement met a dead connection (a one-statement read, whose first write
 * carries its statement too, once).
 */
export function createPool(options: PoolOptions, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    idleTimeoutMillis: options.idleTimeoutMs,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    maxLifetimeSeconds: options.maxLifetimeSeconds,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: 'task-api',
    types: TYPE_PARSERS,
  });
  pool.on('error', (err) => {
    logger.warn('idle database connection failed; the pool discards it', { err });
  });
  pool.on('connect', (client) => {
    client.on('error', (err) => {
      logger.warn('database connection failed', { err });
    });
  });
  return pool;
}
