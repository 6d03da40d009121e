/**
 * The response encoders (src/rpc/binary.ts, src/rpc/json.ts) against protobuf-es: for every
 * message of the API, random init objects must encode to exactly the bytes of
 * `toBinary(schema, create(schema, init))` and the text of `toJsonString(schema, create(…))`.
 */
import { create, type DescField, type DescMessage, ScalarType, toBinary, toJsonString } from '@bufbuild/protobuf';
import { isWrapperDesc, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { file_taskapi_v1_project } from '../../src/gen/taskapi/v1/project_pb.js';
import {
  file_taskapi_v1_resources,
  TaskSchema,
  type TaskStatus,
  WorkerSchema,
} from '../../src/gen/taskapi/v1/resources_pb.js';
import { file_taskapi_v1_task, ListTasksResponseSchema } from '../../src/gen/taskapi/v1/task_pb.js';
import { file_taskapi_v1_tenant } from '../../src/gen/taskapi/v1/tenant_pb.js';
import { file_taskapi_v1_worker } from '../../src/gen/taskapi/v1/worker_pb.js';
import { encodeMessage } from '../../src/rpc/binary.js';
import { encodeJson } from '../../src/rpc/json.js';

const FILES = [
  file_taskapi_v1_resources,
  file_taskapi_v1_project,
  file_taskapi_v1_task,
  file_taskapi_v1_tenant,
  file_taskapi_v1_worker,
];
const MESSAGES = FILES.flatMap((f) => f.messages);

/** Deterministic random numbers (mulberry32). */
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generator(rnd: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const str = () =>
    pick([
      '',
      'a',
      'héllo wörld',
      '日本語',
      '🙂 emoji',
      'x'.repeat(200),
      '\u0000nul',
      'tab\tquote"',
      'back\\slash',
      'lone \ud800 surrogate',
      'lone low \udfff',
      '\u007f del, \u2028 line separator',
      '</script>',
    ]);
  const int64 = () => pick([0n, 1n, 127n, 128n, 300n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)]);
  const uint64 = () => pick([0n, 1n, 128n, 2n ** 53n + 1n, 2n ** 64n - 1n]);
  const int32 = () => pick([0, 1, 127, 128, 16_384, 2 ** 31 - 1, -1, -(2 ** 31)]);
  const json = (depth: number): unknown =>
    depth > 2
      ? pick([1, 'x', true, null])
      : pick([
          () => ({ a: json(depth + 1), 'b c': [json(depth + 1), 2.5] }),
          () => [json(depth + 1)],
          () => pick([0, -3, 1.5, 'text', false, null]),
        ])();

  function scalar(type: ScalarType): unknown {
    switch (type) {
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return int64();
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return uint64();
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return int32();
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return pick([0, 1, 300, 2 ** 32 - 1]);
      case ScalarType.BOOL:
        return rnd() < 0.5;
      case ScalarType.STRING:
        return str();
      case ScalarType.BYTES:
        return pick([new Uint8Array(), new Uint8Array([0, 1, 255])]);
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        return pick([0, -0, 1.5, -2.25, 1e300]);
    }
  }

  function value(field: DescField, depth: number): unknown {
    switch (field.fieldKind) {
      case 'scalar':
        return scalar(field.scalar);
      case 'enum':
        return pick(field.enum.values).number;
      case 'message':
        return messageValue(field.message, depth);
      case 'list': {
        const n = field.listKind === 'message' && depth > 2 ? 0 : pick([0, 1, 3]);
        return Array.from({ length: n }, () =>
          field.listKind === 'message'
            ? messageValue(field.message, depth, true)
            : field.listKind === 'enum'
              ? pick(field.enum.values).number
              : scalar(field.scalar),
        );
      }
      case 'map':
        return Object.fromEntries(Array.from({ length: pick([0, 2]) }, (_, i) => [`k${i}`, str()]));
    }
  }

  function messageValue(m: DescMessage, depth: number, required = false): unknown {
    if (!required && (depth > 2 || rnd() < 0.3)) return undefined;
    if (m.typeName === 'google.protobuf.Struct') return json(0) && { key: json(1), other: 'v' };
    if (isWrapperDesc(m)) return scalar(m.fields[0]!.scalar!);
    return init(m, depth + 1);
  }

  function init(m: DescMessage, depth = 0): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const field of m.fields) {
      if (field.oneof) continue;
      if (rnd() < 0.2) continue; // left out: the zero value or unset
      out[field.localName] = value(field, depth);
    }
    for (const oneof of m.oneofs) {
      const field = pick(oneof.fields);
      if (rnd() < 0.8) out[oneof.localName] = { case: field.localName, value: value(field, depth) };
    }
    return out;
  }
  return { init };
}

describe('the response encoder', () => {
  it('writes the bytes protobuf-es writes, for every message of the API and random contents', () => {
    const rnd = random(7);
    const { init } = generator(rnd);
    let checked = 0;
    for (const m of MESSAGES) {
      for (let i = 0; i < 200; i++) {
        const value = init(m);
        const expected = toBinary(m, create(m, value as never));
        expect(Buffer.from(encodeMessage(m, value)).equals(Buffer.from(expected)), `${m.typeName} #${i}`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(MESSAGES.length * 200);
  });

  it('writes the JSON protobuf-es writes, for every message of the API and random contents', () => {
    const rnd = random(11);
    const { init } = generator(rnd);
    let checked = 0;
    for (const m of MESSAGES) {
      for (let i = 0; i < 200; i++) {
        const value = init(m);
        let expected: string;
        try {
          expected = toJsonString(m, create(m, value as never));
        } catch {
          // What protobuf-es refuses (a Timestamp out of JSON's range) is refused here too.
          expect(() => encodeJson(m, value), `${m.typeName} #${i}`).toThrow();
          continue;
        }
        expect(encodeJson(m, value), `${m.typeName} #${i}`).toBe(expected);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(MESSAGES.length * 150);
  });

  it('writes every Timestamp in the range of JSON as protobuf-es does', () => {
    const rnd = random(3);
    const cases: { seconds: bigint; nanos: number }[] = [
      { seconds: -62135596800n, nanos: 0 },
      { seconds: 253402300799n, nanos: 999_999_999 },
      { seconds: 0n, nanos: 0 },
      { seconds: -1n, nanos: 1 },
      { seconds: 951782400n, nanos: 1000 }, // 2000-02-29
      { seconds: 4107542400n, nanos: 5_000_000 }, // 2100-03-01
    ];
    for (let i = 0; i < 5000; i++) {
      const ms = Math.floor(-62135596800000 + rnd() * (253402300799000 + 62135596800000));
      const nanos = [0, Math.floor(rnd() * 1000) * 1_000_000, Math.floor(rnd() * 1e6) * 1000, Math.floor(rnd() * 1e9)][
        i % 4
      ]!;
      cases.push({ seconds: BigInt(Math.floor(ms / 1000)), nanos });
    }
    for (const t of cases) {
      expect(encodeJson(TimestampSchema, t), `${t.seconds}.${t.nanos}`).toBe(
        toJsonString(TimestampSchema, create(TimestampSchema, t)),
      );
    }
    expect(() => encodeJson(TimestampSchema, { seconds: 253402300800n })).toThrow(/must be from/);
  });

  it('refuses what protobuf-es refuses, and writes an unnamed enum number as it does', () => {
    expect(() => encodeMessage(TaskSchema, { id: 2n ** 64n })).toThrow(/invalid int64/);
    expect(() => encodeMessage(TaskSchema, { maxAttempts: Number.POSITIVE_INFINITY })).toThrow(/invalid int32/);
    expect(() => encodeMessage(TaskSchema, { maxAttempts: 1.5 })).toThrow(/invalid int32/);
    const unnamed = { status: 99 as TaskStatus };
    expect(encodeJson(TaskSchema, unnamed)).toBe(toJsonString(TaskSchema, create(TaskSchema, unnamed)));
  });

  it('takes message objects as well as init objects', () => {
    const task = create(TaskSchema, { id: 5n, title: 't', tags: ['a'], createdAt: { seconds: 1n, nanos: 2 } });
    expect(Buffer.from(encodeMessage(TaskSchema, task))).toEqual(Buffer.from(toBinary(TaskSchema, task)));
  });

  it('writes a worker shared by many tasks of a page every time it occurs', () => {
    const worker = {
      id: 3n,
      handle: '@w',
      capabilities: ['x'],
      createdAt: { seconds: 1_764_510_608n, nanos: 5_000_000 },
    };
    const page = {
      tasks: Array.from({ length: 50 }, (_, i) => ({ id: BigInt(i + 1), assignee: worker, createdBy: worker })),
    };
    const bytes = encodeMessage(ListTasksResponseSchema, page);
    expect(Buffer.from(bytes)).toEqual(
      Buffer.from(toBinary(ListTasksResponseSchema, create(ListTasksResponseSchema, page))),
    );
    expect(encodeMessage(WorkerSchema, worker).byteLength).toBeGreaterThan(0);
    // JSON writes a shared object once per call and repeats its text.
    const text = encodeJson(ListTasksResponseSchema, page);
    expect(text).toBe(toJsonString(ListTasksResponseSchema, create(ListTasksResponseSchema, page)));
    expect(text.split('"handle":"@w"')).toHaveLength(101);
  });

  it('remembers a shared object only within one call: a changed object is written as it is now', () => {
    const worker = { id: 3n, handle: '@before' };
    const page = { tasks: [{ id: 1n, assignee: worker, createdBy: worker }] };
    expect(encodeJson(ListTasksResponseSchema, page)).toContain('"handle":"@before"');
    worker.handle = '@after';
    const text = encodeJson(ListTasksResponseSchema, page);
    expect(text).not.toContain('@before');
    expect(text).toBe(toJsonString(ListTasksResponseSchema, create(ListTasksResponseSchema, page)));
  });

  it('remembers an object per message type: one object as a worker and as a project is written as each', () => {
    const both = { id: 7n, handle: '@h', name: 'n' };
    const task = { id: 1n, assignee: both, project: both, createdBy: both };
    expect(encodeJson(TaskSchema, task)).toBe(toJsonString(TaskSchema, create(TaskSchema, task)));
  });

  it('writes each string as JSON.stringify does, escaping only what it escapes', () => {
    const samples = [
      'plain',
      'quote"',
      'back\\slash',
      '\n\r\t\b\f',
      '\u0001\u001f',
      'é 日本 🙂',
      '\ud83d',
      '\ude42x',
      '\u2028\u2029',
      '\u007f',
    ];
    for (const title of samples) {
      expect(encodeJson(TaskSchema, { title })).toBe(JSON.stringify({ title }));
    }
  });
});
