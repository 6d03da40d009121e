/**
 * SQL building blocks: bound parameters by name instead of by position, and tables whose select
 * list, row parser, insert and update come from the field maps of src/domain.ts. Only column
 * names from those maps and fixed fragments ever enter SQL text; every value is bound.
 */
import {
  type Changes,
  type Entity,
  type Field,
  type FieldKind,
  type Fields,
  type Insertable,
  snakeCase,
} from '../domain.js';

/**
 * The values of one statement. `bind(v, cast)` appends a value and returns its placeholder
 * (`$3::bigint`), so statements read top to bottom without numbering parameters by hand.
 */
export class Params {
  readonly values: unknown[] = [];
  bind(value: unknown, cast: string): string {
    this.values.push(value);
    return `$${this.values.length}::${cast}`;
  }
  /** A bigint id (or null), bound exactly as text. */
  id(value: bigint | null): string {
    return this.bind(value === null ? null : value.toString(), 'bigint');
  }
}

interface Codec {
  readonly cast: string;
  /**
   * The column as an element of the row's array, as text: ids as decimal text (JSON numbers
   * lose int8 precision), timestamps as whole epoch milliseconds (numeric arithmetic, exact; the
   * domain's Dates hold milliseconds), JSON columns as their JSON text.
   */
  select(column: string): string;
  /** A JavaScript expression turning that element (`v`, a string, never null) into the domain value. */
  parse(v: string): string;
  /** Domain value (never null) → bound value. */
  bind(value: unknown): unknown;
}

const CODECS: Record<FieldKind, Codec> = {
  bigint: {
    cast: 'bigint',
    select: (c) => `${c}::text`,
    parse: (v) => `BigInt(${v})`,
    bind: (v) => (v as bigint).toString(),
  },
  int: { cast: 'int', select: (c) => `${c}::text`, parse: (v) => `Number(${v})`, bind: (v) => v },
  text: { cast: 'text', select: (c) => c, parse: (v) => v, bind: (v) => v },
  timestamp: {
    cast: 'timestamptz',
    select: (c) => `floor(extract(epoch from ${c}) * 1000)::int8::text`,
    parse: (v) => `new Date(Number(${v}))`,
    bind: (v) => v,
  },
  // A JS array would be bound as a PostgreSQL array, not as jsonb.
  json: {
    cast: 'jsonb',
    select: (c) => `${c}::text`,
    parse: (v) => `JSON.parse(${v})`,
    bind: (v) => JSON.stringify(v),
  },
};

/**
 * The function turning a row's array of text into the domain object, compiled once per table
 * from the field map: one object literal of fixed shape, each field's conversion inline.
 * Measured on a page of 50 tasks: 230 µs for a loop that assigned fields one by one through
 * each codec's function, 53 µs compiled (docs/performance.md). Only the field map's keys (as
 * JSON string literals) and the codecs' fixed expressions enter the code; no data does.
 */
function compileReader<T>(fields: readonly (readonly [string, Codec])[]): (values: unknown[]) => T {
  const properties = fields.map(([key, codec], i) => {
    const v = `v[${i}]`;
    return `${JSON.stringify(key)}: ${v} == null ? null : ${codec.parse(v)}`;
  });
  return new Function('v', `return { ${properties.join(', ')} };`) as (values: unknown[]) => T;
}

export interface Table<F extends Fields> {
  readonly name: string;
  readonly fields: F;
  /** The plain column list, optionally qualified (for subqueries that a `row()` is selected from). */
  columns(alias?: string): string;
  /**
   * The whole entity as ONE column: a JSON array of its fields in declaration order, named `as`
   * (default `row`), read from the table or its alias. One text value per row instead of one
   * per field: pg parses it with a single JSON.parse, which costs a page of tasks a third of the
   * client CPU of 22 separate columns (per-field decoding and type parsing dominated ListTasks).
   */
  row(alias?: string, as?: string): string;
  /** The bare `array_to_json(…)` of `row()` (to aggregate rows: `json_agg(WORKERS.array('w'))`). */
  array(alias?: string): string;
  /** A row's `row()` column → the domain object. */
  parse(row: Record<string, unknown>): Entity<F>;
  /** The same for a `row(alias, as)` column named otherwise. */
  parseAs(row: Record<string, unknown>, as: string): Entity<F>;
  /** The same, null when the column is null or all-null (the far side of an outer join). */
  parseOptional(row: Record<string, unknown>, as: string): Entity<F> | null;
  /** One JSON array of `array()` → the domain object. */
  fromArray(values: unknown[]): Entity<F>;
  /** The column name of a field. */
  column(key: keyof F & string): string;
  /** A field's value bound with its cast. */
  bind(params: Params, key: keyof F & string, value: unknown): string;
  /** Column list and placeholders of an insert of the fields present in `values`. */
  insert(params: Params, values: Partial<Insertable<F>>): { columns: string[]; placeholders: string[] };
  /** `column = placeholder` of every field present (not undefined) in `changes`. */
  assignments(params: Params, changes: Changes<F>): string[];
}

export function defineTable<F extends Fields>(name: string, fields: F): Table<F> {
  const entries = Object.entries(fields) as [keyof F & string, Field<unknown>][];
  const columnOf = new Map(entries.map(([key]) => [key, snakeCase(key)]));
  const list = entries.map(([key]) => columnOf.get(key)!).join(', ');
  const bind = (params: Params, key: keyof F & string, value: unknown) => {
    const codec = CODECS[fields[key]!.kind];
    return params.bind(value === null || value === undefined ? null : codec.bind(value), codec.cast);
  };
  // Keys that are no field of the table are left out (callers pass their inputs, which may carry
  // more); a field that this kind of write may not set is a programming error.
  const present = (values: object, allowed: (f: Field<unknown>) => boolean) =>
    Object.entries(values).filter(([key, value]) => {
      const f = fields[key];
      if (!f || value === undefined) return false;
      if (!allowed(f)) throw new Error(`${name}.${key} is not writable here`);
      return true;
    }) as [keyof F & string, unknown][];
  const fromArray = compileReader<Entity<F>>(entries.map(([key, f]) => [key, CODECS[f.kind]]));
  const parseAs = (row: Record<string, unknown>, as: string): Entity<F> => {
    const values = row[as];
    if (!Array.isArray(values)) throw new Error(`${name}: no ${as} column in the row`);
    return fromArray(values);
  };
  const elements = (alias: string) =>
    entries.map(([key, f]) => CODECS[f.kind].select(`${alias}${columnOf.get(key)}`)).join(', ');
  // A text array turned into JSON: array_to_json looks up how to write its element type once
  // per array, where json_build_array looks up every argument's type on every row (in
  // PostgreSQL 15: ~0.25 ms of database CPU per page of 50 tasks; docs/performance.md).
  const plain = `array_to_json(array[${elements('')}]::text[])`;
  const array = (alias?: string) => (alias ? `array_to_json(array[${elements(`${alias}.`)}]::text[])` : plain);
  return {
    name,
    fields,
    columns: (alias) => (alias ? entries.map(([key]) => `${alias}.${columnOf.get(key)}`).join(', ') : list),
    row: (alias, as = 'row') => `${array(alias)} as ${as}`,
    array,
    fromArray,
    // Arrow functions, so that `rows.map(TASKS.parse)` works.
    parse: (row) => parseAs(row, 'row'),
    parseAs,
    parseOptional: (row, as) => {
      const values = row[as];
      return Array.isArray(values) && values[0] !== null ? fromArray(values) : null;
    },
    column: (key) => columnOf.get(key)!,
    bind,
    insert(params, values) {
      const fieldsGiven = present(values, (f) => f.write !== 'never');
      return {
        columns: fieldsGiven.map(([key]) => columnOf.get(key)!),
        placeholders: fieldsGiven.map(([key, value]) => bind(params, key, value)),
      };
    },
    assignments(params, changes) {
      return present(changes, (f) => f.write === 'always').map(
        ([key, value]) => `${columnOf.get(key)} = ${bind(params, key, value)}`,
      );
    },
  };
}

/**
 * Keyset paging of a list ordered by id alone: the rows after `afterId`, at most `limit` of
 * them (callers ask for one more than a page: the extra row says that a next page exists).
 */
export interface IdWindow {
  readonly afterId: bigint;
  readonly limit: number;
}

/**
 * `select … from …` (`selectFrom`) narrowed by `conditions`, paged in id order by `window`:
 * the one form of every list ordered by id (tenants, workers, projects, task events).
 */
export function idPageQuery(q: Params, selectFrom: string, conditions: readonly string[], window: IdWindow): string {
  const where = [...conditions, `id > ${q.id(window.afterId)}`].join(' and ');
  return `${selectFrom} where ${where} order by id limit ${q.bind(window.limit, 'int')}`;
}

/** Ids as a bound parameter for `= any($n::bigint[])`. */
export const idList = (ids: Iterable<bigint>): string[] => [...new Set([...ids].map(String))];
