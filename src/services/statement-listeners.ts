/**
 * Listeners of the statements the services send in tenant transactions: tests attach one to
 * see what a call sends, or to make a statement fail (a listener that throws fails that
 * statement, and so its transaction, as a database error would). Production code attaches none;
 * then a transaction's Tx is used as it is, and the cost is one lookup per transaction.
 */
import type { Database, Tx } from '../db/index.js';

/** Called before each statement is sent, with its text and values. */
export type StatementListener = (text: string, values: readonly unknown[]) => void;

const listeners = new WeakMap<Database, Set<StatementListener>>();

/** Attaches `listener` to the tenant transactions on `db`; returns the function that detaches it. */
export function listenToStatements(db: Database, listener: StatementListener): () => void {
  const set = listeners.get(db) ?? new Set();
  listeners.set(db, set);
  set.add(listener);
  return () => {
    set.delete(listener);
  };
}

/** `tx`, telling the listeners of `db` about each statement (none attached: `tx` itself). */
export function observed(db: Database, tx: Tx): Tx {
  const set = listeners.get(db);
  if (!set || set.size === 0) return tx;
  const told = <F extends (text: string, values?: readonly unknown[]) => Promise<unknown>>(run: F): F =>
    ((text: string, values?: readonly unknown[]) => {
      for (const listener of set) listener(text, values ?? []);
      return run(text, values);
    }) as F;
  return {
    tenantId: tx.tenantId,
    many: told(tx.many.bind(tx)),
    one: told(tx.one.bind(tx)),
    maybeOne: told(tx.maybeOne.bind(tx)),
    exec: told(tx.exec.bind(tx)),
  };
}
