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
  /** Raw pg value (never null) → domain value. */
  parse(raw: unknown): unknown;
  /** Domain value (never null) → bound value. */
  bind(value: unknown): unknown;
}

// int8 arrives as a string (pg keeps it exact), timestamptz as a Date, jsonb parsed.
const CODECS: Record<FieldKind, Codec> = {
  bigint: { cast: 'bigint', parse: (v) => BigInt(v as string), bind: (v) => (v as bigint).toString() },
  int: { cast: 'int', parse: (v) => Number(v), bind: (v) => v },
  text: { cast: 'text', parse: (v) => v, bind: (v) => v },
  timestamp: { cast: 'timestamptz', parse: (v) => v, bind: (v) => v },
  // A JS array would be bound as a PostgreSQL array, not as jsonb.
  json: { cast: 'jsonb', parse: (v) => v, bind: (v) => JSON.stringify(v) },
};

export interface Table<F extends Fields> {
  readonly name: string;
  readonly fields: F;
  /**
   * The select list of every field, optionally qualified by a table alias and renamed with a
   * prefix (to return a row's before and after side by side).
   */
  columns(alias?: string, prefix?: string): string;
  /** A row of `columns()` → the domain object. */
  parse(row: Record<string, unknown>): Entity<F>;
  /** The same for columns selected with a prefix. */
  parsePrefixed(row: Record<string, unknown>, prefix: string): Entity<F>;
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
  // What a row parse needs per field, worked out once per column prefix (a page parses dozens
  // of rows; building each column's name again for every row showed in profiles).
  const readers = new Map<string, { key: string; column: string; parse: (raw: unknown) => unknown }[]>();
  const readersFor = (prefix: string) => {
    let list = readers.get(prefix);
    if (!list) {
      list = entries.map(([key, f]) => ({ key, column: `${prefix}${columnOf.get(key)}`, parse: CODECS[f.kind].parse }));
      readers.set(prefix, list);
    }
    return list;
  };
  const parseRow = (row: Record<string, unknown>, prefix: string): Entity<F> => {
    const out: Record<string, unknown> = {};
    for (const { key, column, parse } of readersFor(prefix)) {
      const raw = row[column];
      out[key] = raw === null || raw === undefined ? null : parse(raw);
    }
    return out as Entity<F>;
  };
  return {
    name,
    fields,
    columns: (alias, prefix) =>
      alias || prefix
        ? entries
            .map(
              ([key]) =>
                `${alias ? `${alias}.` : ''}${columnOf.get(key)}${prefix ? ` as ${prefix}${columnOf.get(key)}` : ''}`,
            )
            .join(', ')
        : list,
    // Arrow functions, so that `rows.map(TASKS.parse)` works.
    parse: (row) => parseRow(row, ''),
    parsePrefixed: (row, prefix) => parseRow(row, prefix),
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
