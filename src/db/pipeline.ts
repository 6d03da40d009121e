/**
 * Several statements in ONE round trip with the extended query protocol: each statement's
 * Parse (unless its name is already parsed on this connection), Bind, Describe and Execute, and
 * one Sync at the end, written together. PostgreSQL runs them in order and answers once; a BEGIN
 * among them makes the rest of the transaction explicit, so it continues after the Sync. An
 * error skips the rest (PostgreSQL discards messages up to the Sync).
 *
 * Why: every call starts with BEGIN, the transaction's settings and the API-key check. As one
 * multi-statement simple query (one round trip, but values inlined as literals) PostgreSQL
 * parsed and planned the settings and the key lookup again on every call: ~90 µs of its CPU per
 * call (pgbench, simple vs prepared), a quarter of a GetTask's database work. Pipelined, they are
 * named prepared statements like every other statement, with bound values, still in one round
 * trip.
 *
 * node-postgres has no pipeline API; this is a `pg.Query` (its documented extension point for
 * custom submittables) that writes the messages itself through the connection's own Parse / Bind /
 * Describe / Execute / Sync writers. Its results are the per-statement results pg already keeps
 * for multi-statement queries. Which named statements the server parsed is learned from the
 * connection's ParseComplete messages, in order, so that pg's record of them stays exact even
 * when a later statement of the pipeline fails.
 */
import pg from 'pg';

export interface PipelineStatement {
  readonly text: string;
  /** Bound, never inlined; converted as `client.query` converts them (pg's prepareValue). */
  readonly values: readonly unknown[];
  /** Named statements are parsed once per connection; unnamed ones on every use. */
  readonly name?: string;
}

/** What pg's Connection offers the submittable (pg-protocol message writers and state). */
interface Connection {
  parsedStatements: Record<string, string>;
  stream: { cork?: () => void; uncork?: () => void };
  on(event: 'parseComplete', listener: () => void): void;
  off(event: 'parseComplete', listener: () => void): void;
  parse(query: { text: string; name: string; types?: unknown[] }): void;
  bind(config: { portal: string; statement: string; values: readonly unknown[] }): void;
  describe(msg: { type: 'P'; name: string }): void;
  execute(config: { portal: string }): void;
  sync(): void;
}

type Callback = (err: Error | null, results?: pg.QueryResult | pg.QueryResult[]) => void;

// pg.Query is exported at run time (the class behind client.query); its typings leave it out,
// as they leave out pg.utils.prepareValue, which turns a value into its text (or a Buffer).
const Query = (pg as unknown as { Query: new (config: object, values?: unknown, cb?: Callback) => object }).Query;
const prepareValue = (pg as unknown as { utils: { prepareValue(v: unknown): string | Buffer | null } }).utils
  .prepareValue;

interface PreparedStatement {
  readonly text: string;
  readonly values: readonly (string | Buffer | null)[];
  readonly name?: string;
}

class PipelineQuery extends Query {
  private connection: Connection | null = null;
  private readonly parsing: PreparedStatement[] = [];
  private readonly onParseComplete = () => {
    const statement = this.parsing.shift();
    if (statement?.name && this.connection) this.connection.parsedStatements[statement.name] = statement.text;
  };

  constructor(
    private readonly statements: readonly PreparedStatement[],
    callback: Callback,
  ) {
    super({ text: statements.map((s) => s.text).join(';\n') }, undefined, (err, results) => {
      this.connection?.off('parseComplete', this.onParseComplete);
      callback(err, results);
    });
  }

  requiresPreparation(): boolean {
    return true;
  }

  /** Called by pg's `submit`, with the socket corked: every message goes out in one write. */
  prepare(connection: Connection): void {
    this.connection = connection;
    connection.on('parseComplete', this.onParseComplete);
    for (const s of this.statements) {
      const name = s.name ?? '';
      if (!name || connection.parsedStatements[name] === undefined) {
        connection.parse({ text: s.text, name });
        this.parsing.push(s);
      }
      connection.bind({ portal: '', statement: name, values: s.values });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '' });
    }
    connection.sync();
  }
}

/** Runs the statements in one round trip; one result per statement, in order. */
export function runPipeline(
  client: pg.PoolClient,
  statements: readonly PipelineStatement[],
): Promise<pg.QueryResult[]> {
  // Converted before anything is written: once some messages of the pipeline are written
  // without their Sync the server would never answer, and a conversion can throw (a cycle).
  let prepared: PreparedStatement[];
  try {
    prepared = statements.map((s) => ({ ...s, values: s.values.map(prepareValue) }));
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const query = new PipelineQuery(prepared, (err, results) => {
      if (err) reject(err);
      else resolve(Array.isArray(results) ? results : [results!]);
    });
    (client as unknown as { query(q: object): void }).query(query);
  });
}
