/**
 * Protobuf JSON encoding of response messages given as init objects, for Connect's JSON codec:
 * the text is exactly `toJsonString(schema, create(schema, init))` with protobuf-es' default
 * options (test/unit/encoders.test.ts checks that on every message of the API).
 *
 * Why: as for the binary encoder (src/rpc/binary.ts), building message objects and then a JSON
 * tree for a page of 50 tasks cost more than reading the page. Here each message type gets one
 * generated function that appends its fields to a string, reading each field by its constant
 * name; a string is quoted as it is unless it holds something to escape (then JSON.stringify
 * writes it); a nested message object met again in the same response (a page's workers) is
 * written once and its text repeated.
 *
 * Covered: scalars, enums, repeated fields and nested messages, google.protobuf.Timestamp.
 * Messages with maps, oneofs or other well-known types (Struct, wrappers, Duration, …) are
 * written by protobuf-es and embedded.
 */
import { create, type DescField, type DescMessage, toJsonString } from '@bufbuild/protobuf';
import { scalarKind, unboxed } from './binary.js';

type Init = Record<string, unknown>;
type JsonWriter = (m: Init) => string;

/** The text of `toJsonString(schema, create(schema, init))`. */
export function encodeJson(schema: DescMessage, init: object): string {
  if (written !== null) return writerOf(schema)(init as Init);
  written = new Map();
  try {
    return writerOf(schema)(init as Init);
  } finally {
    // Nothing of a response is kept once it is written.
    written = null;
  }
}

/**
 * While an `encodeJson` call runs: per remembering writer (one per message type), the text of
 * each object it wrote. A page shares one Worker object among all its tasks that name it
 * (src/rpc/convert.ts): it is written once and its text repeated. Encoding is synchronous and
 * never changes its input, so an object's text cannot change within a call.
 */
let written: Map<JsonWriter, Map<object, string>> | null = null;

function once(write: JsonWriter): JsonWriter {
  const remembered: JsonWriter = (m) => {
    if (written === null) return write(m);
    let texts = written.get(remembered);
    if (!texts) {
      texts = new Map();
      written.set(remembered, texts);
    }
    let text = texts.get(m);
    if (text === undefined) {
      text = write(m);
      texts.set(m, text);
    }
    return text;
  };
  return remembered;
}

/**
 * The writer of a nested message field: remembering (one per message type, shared by every field
 * of that type), but for the well-known types (a Timestamp is one object per value).
 */
function subWriter(schema: DescMessage): JsonWriter {
  if (schema.typeName.startsWith('google.protobuf.')) return writerOf(schema);
  let writer = remembering.get(schema);
  if (!writer) {
    writer = once(writerOf(schema));
    remembering.set(schema, writer);
  }
  return writer;
}

const remembering = new WeakMap<DescMessage, JsonWriter>();

const writers = new WeakMap<DescMessage, { write: JsonWriter }>();

function writerOf(schema: DescMessage): JsonWriter {
  let entry = writers.get(schema);
  if (!entry) {
    // Registered before compiling: a recursive type (Task.parent) calls through `entry`.
    const registered: { write: JsonWriter } = { write: (m) => registered.write(m) };
    entry = registered;
    writers.set(schema, entry);
    registered.write =
      schema.typeName === 'google.protobuf.Timestamp'
        ? (m) => HELPERS.timestamp(m)
        : (compile(schema) ?? ((m) => toJsonString(schema, create(schema, m as never))));
  }
  const found = entry;
  return (m) => found.write(m);
}

function compile(schema: DescMessage): JsonWriter | null {
  if (schema.oneofs.length > 0 || schema.typeName.startsWith('google.protobuf.')) return null;
  const subs: JsonWriter[] = [];
  const enums: Map<number, string>[] = [];
  const code: string[] = [];
  for (const field of [...schema.fields].sort((a, b) => a.number - b.number)) {
    const c = fieldCode(field, subs, enums);
    if (c === null) return null;
    code.push(c);
  }
  return new Function(
    'h',
    'subs',
    'enums',
    `return function (m) { let s = '{', c = '', v; ${code.join('\n')} return s + '}'; };`,
  )(HELPERS, subs, enums) as JsonWriter;
}

const IMPLICIT = 2;

function fieldCode(field: DescField, subs: JsonWriter[], enums: Map<number, string>[]): string | null {
  const get = `v = m[${JSON.stringify(field.localName)}];`;
  const set = 'v !== undefined && v !== null';
  const key = JSON.stringify(`${JSON.stringify(field.jsonName)}:`);
  const emit = (value: string) => `s += c + ${key} + ${value}; c = ',';`;
  const enumNames = (f: DescField & { enum: { values: readonly { number: number; jsonName: string }[] } }) => {
    enums.push(new Map(f.enum.values.map((e) => [e.number, e.jsonName])));
    return `enums[${enums.length - 1}]`;
  };
  if (field.oneof) return null;
  switch (field.fieldKind) {
    case 'scalar': {
      const k = scalarKind(field.scalar);
      if (k === null) return null;
      const when = field.presence === IMPLICIT ? `${set} && !h.zero_${k}(v)` : set;
      return `${get} if (${when}) { ${emit(`h.${k}(v)`)} }`;
    }
    case 'enum': {
      const names = enumNames(field);
      const zero = field.enum.values[0]!.number;
      const when = field.presence === IMPLICIT ? `${set} && v !== ${zero}` : set;
      return `${get} if (${when}) { ${emit(`h.enumName(${names}, v)`)} }`;
    }
    case 'message': {
      if (field.delimitedEncoding || unboxed(field.message)) return null;
      subs.push(subWriter(field.message));
      return `${get} if (${set}) { ${emit(`subs[${subs.length - 1}](v)`)} }`;
    }
    case 'list': {
      let item: string;
      if (field.listKind === 'message') {
        if (field.delimitedEncoding || unboxed(field.message)) return null;
        subs.push(subWriter(field.message));
        item = `subs[${subs.length - 1}](v[i])`;
      } else if (field.listKind === 'enum') {
        item = `h.enumName(${enumNames(field)}, v[i])`;
      } else {
        const k = scalarKind(field.scalar);
        if (k === null) return null;
        item = `h.${k}(v[i])`;
      }
      return `${get} if (${set} && v.length > 0) {
        let a = '[' + ${item.replace('v[i]', 'v[0]')};
        for (let i = 1; i < v.length; i++) a += ',' + ${item};
        ${emit(`a + ']'`)}
      }`;
    }
    case 'map':
      return null;
  }
}

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of a JSON Timestamp.
const TIMESTAMP_MS_MIN = -62135596800000;
const TIMESTAMP_MS_MAX = 253402300799000;

/**
 * What JSON.stringify would escape in a string: `"`, a backslash, control characters, and any
 * UTF-16 surrogate (a lone one is escaped, a pair is not; telling the two apart is left to
 * JSON.stringify).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** int64 as protobuf-es prints it: the decimal value, quoted (init objects may hold a number or a string). */
const int64Text = (v: unknown): string => `"${typeof v === 'bigint' ? v : BigInt(v as string)}"`;

/** What the generated code calls; each value → its JSON text, as protobuf-es writes it. */
const HELPERS = {
  zero_int32: (v: number) => v === 0,
  int32: (v: number) => String(v),
  zero_uint32: (v: number) => v === 0,
  uint32: (v: number) => String(v >>> 0),
  zero_int64: (v: unknown) => v === 0n || v === 0 || v === '0',
  int64: (v: unknown) => int64Text(v),
  zero_uint64: (v: unknown) => v === 0n || v === 0 || v === '0',
  uint64: (v: unknown) => int64Text(v),
  zero_bool: (v: boolean) => v === false,
  bool: (v: boolean) => (v ? 'true' : 'false'),
  zero_string: (v: string) => v === '',
  // Most strings need no escape: quoted as they are, without a call into JSON.stringify.
  string: (v: string) => (typeof v === 'string' && !NEEDS_ESCAPE.test(v) ? `"${v}"` : JSON.stringify(v)),
  zero_bytes: (v: Uint8Array) => v.byteLength === 0,
  bytes: (v: Uint8Array) => `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"`,
  // -0 is not the zero value here (protobuf-es compares with Object.is); it is written as 0.
  zero_double: (v: number) => Object.is(v, 0),
  double: (v: number) =>
    Number.isNaN(v) ? '"NaN"' : v === Infinity ? '"Infinity"' : v === -Infinity ? '"-Infinity"' : JSON.stringify(v),
  enumName(names: Map<number, string>, v: number): string {
    const name = names.get(v);
    // A number the enum does not name is written as the number, as protobuf-es does.
    return name === undefined ? String(v) : `"${name}"`;
  },
  /** RFC 3339 with 0, 3, 6 or 9 fraction digits, as protobuf-es' timestampToJson. */
  timestamp(t: Init): string {
    const seconds = t.seconds === undefined ? 0 : Number(t.seconds);
    const nanos = (t.nanos as number | undefined) ?? 0;
    const ms = seconds * 1000;
    if (ms < TIMESTAMP_MS_MIN || ms > TIMESTAMP_MS_MAX) {
      throw new Error('cannot encode a Timestamp to JSON: must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z');
    }
    if (nanos < 0 || nanos > 999_999_999) throw new Error('cannot encode a Timestamp to JSON: nanos out of range');
    const fraction =
      nanos === 0
        ? ''
        : nanos % 1_000_000 === 0
          ? `.${pad(nanos / 1_000_000, 3)}`
          : nanos % 1000 === 0
            ? `.${pad(nanos / 1000, 6)}`
            : `.${pad(nanos, 9)}`;
    return `"${civil(seconds)}${fraction}Z"`;
  },
};

const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * `YYYY-MM-DDTHH:MM:SS` of whole seconds since the epoch (years 1–9999), without a Date:
 * toISOString was most of the time of a page's JSON. Days to civil date by Howard Hinnant's
 * algorithm (http://howardhinnant.github.io/date_algorithms.html#civil_from_days).
 */
function civil(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  let rest = seconds - days * 86_400;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  const secs = rest - minutes * 60;
  // The timestamps of one response mostly fall on a few days: the date of the last one is kept.
  if (days !== lastDays) {
    lastDays = days;
    lastDate = civilDate(days);
  }
  return `${lastDate}T${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[secs]}`;
}

let lastDays = Number.NaN;
let lastDate = '';

/** `YYYY-MM-DD` of a day number (days since 1970-01-01). */
function civilDate(days: number): string {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return `${pad(year, 4)}-${TWO_DIGITS[month]}-${TWO_DIGITS[day]}`;
}
