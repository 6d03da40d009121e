/**
 * Protobuf binary encoding of response messages given as init objects (the plain shape that
 * protobuf-es `create()` takes), without building message objects first: the bytes are exactly
 * those of `toBinary(schema, create(schema, init))` (test/unit/encoders.test.ts checks that on
 * every message of the API with random contents).
 *
 * Why: a ListTasks page is 50 Task messages with two Worker messages and up to five Timestamps
 * each. Building those ~400 message objects with `create()` and encoding them with `toBinary()`
 * cost about as much server CPU as reading the page from PostgreSQL. Here each message type gets
 * a size and a write function generated from its descriptor (as protobufjs does): every field is
 * read by its constant name, so V8 sees one object shape per site instead of a keyed lookup per
 * field. A message is sized in a first pass and written into one buffer in a second.
 *
 * Unknown fields (`$unknown` of a decoded message) are not written: handlers return fresh init
 * objects. Values protobuf-es refuses (an int64 out of range, a fractional int32) are refused.
 *
 * Message types this encoder does not cover — maps, oneofs, google.protobuf.Struct fields
 * (JsonObject in init shapes), wrapper fields, groups, and the scalar types no response uses
 * (sint*, fixed*, sfixed*, float) — are encoded by protobuf-es and embedded as bytes.
 */
import { create, type DescField, type DescMessage, ScalarType, toBinary } from '@bufbuild/protobuf';
import { isWrapperDesc } from '@bufbuild/protobuf/wkt';

type Init = Record<string, unknown>;

/**
 * What the first pass leaves for the second, in the order both visit the messages: the size of
 * every message with nested messages (a leaf's size is cheaper to compute again than to keep),
 * and the bytes of every message protobuf-es encoded.
 */
interface Context {
  readonly sizes: number[];
  nextSize: number;
  readonly fallback: Uint8Array[];
  nextFallback: number;
}

interface Output {
  buf: Buffer;
  pos: number;
}

interface MessageCodec {
  /** Bytes of the message, without tag and length (first pass). */
  size(m: Init, ctx: Context): number;
  /** The same in the second pass, just before `write`. */
  known(m: Init, ctx: Context): number;
  write(m: Init, out: Output, ctx: Context): void;
}

/** The bytes of `toBinary(schema, create(schema, init))`. */
export function encodeMessage(schema: DescMessage, init: object): Uint8Array {
  const ctx: Context = { sizes: [], nextSize: 0, fallback: [], nextFallback: 0 };
  const codec = messageCodec(schema);
  const out: Output = { buf: Buffer.allocUnsafe(codec.size(init as Init, ctx)), pos: 0 };
  codec.known(init as Init, ctx);
  codec.write(init as Init, out, ctx);
  // The buffer is not zeroed: a size pass that disagreed with the write pass must not send
  // whatever the pool memory held.
  if (out.pos !== out.buf.byteLength) throw new Error(`encoder: wrote ${out.pos} of ${out.buf.byteLength} bytes`);
  return out.buf;
}

const codecs = new WeakMap<DescMessage, MessageCodec>();

function messageCodec(schema: DescMessage): MessageCodec {
  const cached = codecs.get(schema);
  if (cached) return cached;
  // Registered before compiling, so that a recursive type (Task.parent) calls this object,
  // whose functions are filled in below.
  const codec: MessageCodec = { size: unready, known: unready, write: unready };
  codecs.set(schema, codec);
  Object.assign(codec, compile(schema) ?? fallbackCodec(schema));
  return codec;
}

function unready(): never {
  throw new Error('encoder used while it was compiled');
}

function fallbackCodec(schema: DescMessage): MessageCodec {
  return {
    size(m, ctx) {
      const bytes = toBinary(schema, create(schema, m as never));
      ctx.fallback.push(bytes);
      return bytes.byteLength;
    },
    known: (_, ctx) => ctx.fallback[ctx.nextFallback]!.byteLength,
    write(_, out, ctx) {
      const bytes = ctx.fallback[ctx.nextFallback++]!;
      out.buf.set(bytes, out.pos);
      out.pos += bytes.byteLength;
    },
  };
}

const IMPLICIT = 2;
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_DELIMITED = 2;

/** Message types whose fields hold another representation in init shapes. */
export const unboxed = (m: DescMessage) =>
  isWrapperDesc(m) ||
  ['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue'].includes(m.typeName);

/** The generated size and write functions of the message, or null when it is not covered. */
function compile(schema: DescMessage): MessageCodec | null {
  if (schema.oneofs.length > 0 || unboxed(schema)) return null;
  const subs: MessageCodec[] = [];
  const size: string[] = [];
  const write: string[] = [];
  for (const field of [...schema.fields].sort((a, b) => a.number - b.number)) {
    const code = fieldCode(field, subs);
    if (code === null) return null;
    size.push(code.size);
    write.push(code.write);
  }
  const generated = new Function(
    'h',
    'subs',
    `return {
       size(m, ctx) { let n = 0, v, l; ${size.join('\n')} return n; },
       write(m, out, ctx) { let v; ${write.join('\n')} },
     };`,
  )(HELPERS, subs) as Pick<MessageCodec, 'size' | 'write'>;
  if (subs.length === 0) return { size: generated.size, known: generated.size, write: generated.write };
  // With nested messages, the first pass keeps each size for the second (in visiting order: a
  // slot is taken before the nested messages take theirs, and read before they are written).
  return {
    size(m, ctx) {
      const slot = ctx.sizes.length;
      ctx.sizes.push(0);
      const n = generated.size(m, ctx);
      ctx.sizes[slot] = n;
      return n;
    },
    known: (_, ctx) => ctx.sizes[ctx.nextSize++]!,
    write: generated.write,
  };
}

/** The statements that size and write one field (`m` the message, `v` a scratch variable). */
function fieldCode(field: DescField, subs: MessageCodec[]): { size: string; write: string } | null {
  const get = `v = m[${JSON.stringify(field.localName)}];`;
  const set = 'v !== undefined && v !== null';
  const tag = (wire: number) => {
    const bytes = varintBytes(field.number * 8 + wire);
    return { length: bytes.length, write: bytes.map((b) => `out.buf[out.pos++] = ${b};`).join(' ') };
  };
  const sub = (m: DescMessage) => {
    subs.push(messageCodec(m));
    return `subs[${subs.length - 1}]`;
  };
  switch (field.fieldKind) {
    case 'scalar':
    case 'enum': {
      if (field.oneof) return null;
      const k = field.fieldKind === 'enum' ? 'int32' : scalarKind(field.scalar);
      if (k === null) return null;
      const t = tag(WIRE_OF[k]);
      const when = field.presence === IMPLICIT ? `${set} && !h.zero_${k}(v)` : set;
      return {
        size: `${get} if (${when}) n += ${t.length} + h.size_${k}(v);`,
        write: `${get} if (${when}) { ${t.write} h.write_${k}(v, out); }`,
      };
    }
    case 'message': {
      if (field.oneof || field.delimitedEncoding || unboxed(field.message)) return null;
      const s = sub(field.message);
      const t = tag(WIRE_DELIMITED);
      return {
        size: `${get} if (${set}) { l = ${s}.size(v, ctx); n += ${t.length} + h.varintSize(l) + l; }`,
        write: `${get} if (${set}) { ${t.write} h.writeVarint(${s}.known(v, ctx), out); ${s}.write(v, out, ctx); }`,
      };
    }
    case 'list': {
      const each = (body: string) => `for (let i = 0; i < v.length; i++) { ${body} }`;
      if (field.listKind === 'message') {
        if (field.delimitedEncoding || unboxed(field.message)) return null;
        const s = sub(field.message);
        const t = tag(WIRE_DELIMITED);
        return {
          size: `${get} if (${set}) ${each(`l = ${s}.size(v[i], ctx); n += ${t.length} + h.varintSize(l) + l;`)}`,
          write: `${get} if (${set}) ${each(`${t.write} h.writeVarint(${s}.known(v[i], ctx), out); ${s}.write(v[i], out, ctx);`)}`,
        };
      }
      const k = field.listKind === 'enum' ? 'int32' : scalarKind(field.scalar);
      if (k === null) return null;
      if (field.packed && WIRE_OF[k] !== WIRE_DELIMITED) {
        const t = tag(WIRE_DELIMITED);
        const total = `l = 0; ${each(`l += h.size_${k}(v[i]);`)}`;
        return {
          size: `${get} if (${set} && v.length > 0) { ${total} n += ${t.length} + h.varintSize(l) + l; }`,
          write: `${get} if (${set} && v.length > 0) { let l = 0; ${each(`l += h.size_${k}(v[i]);`)} ${t.write} h.writeVarint(l, out); ${each(`h.write_${k}(v[i], out);`)} }`,
        };
      }
      const t = tag(WIRE_OF[k]);
      return {
        size: `${get} if (${set}) ${each(`n += ${t.length} + h.size_${k}(v[i]);`)}`,
        write: `${get} if (${set}) ${each(`${t.write} h.write_${k}(v[i], out);`)}`,
      };
    }
    case 'map':
      return null;
  }
}

// --- scalars ---

/** The scalar types both encoders cover (src/rpc/json.ts too); the rest fall back to protobuf-es. */
export type ScalarKind = 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool' | 'string' | 'bytes' | 'double';

const WIRE_OF: Record<ScalarKind, number> = {
  int32: WIRE_VARINT,
  uint32: WIRE_VARINT,
  int64: WIRE_VARINT,
  uint64: WIRE_VARINT,
  bool: WIRE_VARINT,
  string: WIRE_DELIMITED,
  bytes: WIRE_DELIMITED,
  double: WIRE_FIXED64,
};

export function scalarKind(type: ScalarType): ScalarKind | null {
  switch (type) {
    case ScalarType.INT32:
      return 'int32';
    case ScalarType.UINT32:
      return 'uint32';
    case ScalarType.INT64:
      return 'int64';
    case ScalarType.UINT64:
      return 'uint64';
    case ScalarType.BOOL:
      return 'bool';
    case ScalarType.STRING:
      return 'string';
    case ScalarType.BYTES:
      return 'bytes';
    case ScalarType.DOUBLE:
      return 'double';
    default:
      return null;
  }
}

/** UTF-8 length; ASCII (nearly every string here) is counted without leaving JS. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** A safe non-negative integer as a number; -1 for anything else (negative, past 2^53). */
const smallInt = (v: unknown): number => {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
};

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** An int64 or uint64 past the safe integers, as its 64-bit two's complement; refused out of range. */
function wide(v: unknown): bigint {
  const n = BigInt(v as bigint);
  if (n < INT64_MIN || n > UINT64_MAX) throw new Error(`invalid int64: ${n}`);
  return BigInt.asUintN(64, n);
}

/** int32, uint32 and enum values must be integers (a fraction or Infinity would be mis-sized). */
function int(v: number): number {
  if (!Number.isInteger(v)) throw new Error(`invalid int32: ${v}`);
  return v;
}

/** What the generated code calls (one monomorphic function per scalar kind and direction). */
const HELPERS = {
  varintSize,
  writeVarint,
  // int32 and enums: negative values are sign-extended to ten bytes, as protobuf-es does.
  zero_int32: (v: number) => v === 0,
  size_int32: (v: number) => (int(v) < 0 ? 10 : varintSize(v)),
  write_int32(v: number, out: Output) {
    if (v < 0) writeBigVarint(BigInt.asUintN(64, BigInt(v)), out);
    else writeVarint(v, out);
  },
  zero_uint32: (v: number) => v === 0,
  size_uint32: (v: number) => varintSize(int(v) >>> 0),
  write_uint32: (v: number, out: Output) => writeVarint(v >>> 0, out),
  // int64 and uint64: a bigint, or a number or a decimal string (create() takes those too).
  zero_int64: (v: unknown) => v === 0n || v === 0 || v === '0',
  size_int64(v: unknown) {
    const n = smallInt(v);
    return n >= 0 ? varintSize(n) : bigVarintSize(wide(v));
  },
  write_int64(v: unknown, out: Output) {
    const n = smallInt(v);
    if (n >= 0) writeVarint(n, out);
    else writeBigVarint(wide(v), out);
  },
  zero_uint64: (v: unknown) => v === 0n || v === 0 || v === '0',
  size_uint64: (v: unknown) => HELPERS.size_int64(v),
  write_uint64: (v: unknown, out: Output) => HELPERS.write_int64(v, out),
  zero_bool: (v: boolean) => v === false,
  size_bool: () => 1,
  write_bool(v: boolean, out: Output) {
    out.buf[out.pos++] = v ? 1 : 0;
  },
  zero_string: (v: string) => v === '',
  size_string(v: string) {
    const n = utf8Length(v);
    return varintSize(n) + n;
  },
  write_string(s: string, out: Output) {
    const n = utf8Length(s);
    writeVarint(n, out);
    if (n === s.length) {
      const buf = out.buf;
      let pos = out.pos;
      for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
      out.pos = pos;
    } else {
      out.pos += out.buf.write(s, out.pos, n, 'utf8');
    }
  },
  zero_bytes: (v: Uint8Array) => v.byteLength === 0,
  size_bytes: (v: Uint8Array) => varintSize(v.byteLength) + v.byteLength,
  write_bytes(v: Uint8Array, out: Output) {
    writeVarint(v.byteLength, out);
    out.buf.set(v, out.pos);
    out.pos += v.byteLength;
  },
  // -0 is not the zero value (it is written), as in protobuf-es (Object.is).
  zero_double: (v: number) => Object.is(v, 0),
  size_double: () => 8,
  write_double(v: number, out: Output) {
    out.pos = out.buf.writeDoubleLE(v, out.pos);
  },
};

// --- varints (non-negative numbers up to 2^53 - 1; bigints for the rest) ---

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(n: number, out: Output): void {
  const buf = out.buf;
  while (n >= 128) {
    buf[out.pos++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[out.pos++] = n;
}

function bigVarintSize(n: bigint): number {
  let size = 1;
  while (n >= 128n) {
    n >>= 7n;
    size++;
  }
  return size;
}

function writeBigVarint(n: bigint, out: Output): void {
  while (n >= 128n) {
    out.buf[out.pos++] = Number(n & 127n) | 128;
    n >>= 7n;
  }
  out.buf[out.pos++] = Number(n);
}

function varintBytes(n: number): number[] {
  const out: Output = { buf: Buffer.alloc(varintSize(n)), pos: 0 };
  writeVarint(n, out);
  return [...out.buf];
}
