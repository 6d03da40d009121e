/**
 * LEGACY bridge, to be removed: the JSON-shaped client (string service and method names, proto-JSON
 * requests and responses) that the suites written before the typed clients still use. New tests
 * use test/helpers/clients.ts.
 */
/**
 * Two real clients over real sockets, with one calling convention so that a test runs
 * unchanged over both:
 * - gRPC: @grpc/grpc-js with @grpc/proto-loader loading the .proto files (HTTP/2);
 * - Connect: JSON over HTTP/1.1 with fetch.
 * Requests and responses are written in proto JSON form (camelCase, int64 as strings, enums
 * as names, timestamps as RFC 3339, Struct as plain JSON, FieldMask as "a,b"); the gRPC client
 * converts to and from grpc-js's object form. Failures throw RpcError with the gRPC code name.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export class RpcError extends Error {
  constructor(
    /** gRPC code name: NOT_FOUND, INVALID_ARGUMENT, ... */
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

// biome-ignore lint: responses are free-form JSON in tests
export type Json = any;

export interface CallOptions {
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** Cancels the call from the client's side. */
  signal?: AbortSignal;
}

export interface ApiClient {
  call(service: string, method: string, request?: Json, options?: CallOptions): Promise<Json>;
  close(): void;
}

const PROTO_DIR = join(import.meta.dirname, '../../../proto');
export const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v, k]),
);
export const CONNECT_CODES: Record<string, string> = {
  canceled: 'CANCELLED',
  unknown: 'UNKNOWN',
  invalid_argument: 'INVALID_ARGUMENT',
  deadline_exceeded: 'DEADLINE_EXCEEDED',
  not_found: 'NOT_FOUND',
  already_exists: 'ALREADY_EXISTS',
  permission_denied: 'PERMISSION_DENIED',
  resource_exhausted: 'RESOURCE_EXHAUSTED',
  failed_precondition: 'FAILED_PRECONDITION',
  aborted: 'ABORTED',
  out_of_range: 'OUT_OF_RANGE',
  unimplemented: 'UNIMPLEMENTED',
  internal: 'INTERNAL',
  unavailable: 'UNAVAILABLE',
  data_loss: 'DATA_LOSS',
  unauthenticated: 'UNAUTHENTICATED',
};

export function connectClient(port: number, baseHeaders: Record<string, string> = {}): ApiClient {
  return {
    async call(service, method, request = {}, options = {}) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'connect-protocol-version': '1',
        ...baseHeaders,
        ...options.headers,
      };
      if (options.timeoutMs !== undefined) headers['connect-timeout-ms'] = String(options.timeoutMs);
      const res = await fetch(`http://127.0.0.1:${port}/taskapi.v1.${service}/${method}`, {
        method: 'POST',
        headers,
        body: typeof request === 'string' ? request : JSON.stringify(request),
        signal: options.signal,
      });
      const text = await res.text();
      let body: Json;
      try {
        body = JSON.parse(text);
      } catch {
        throw new RpcError('UNKNOWN', `HTTP ${res.status}: ${text.slice(0, 200)}`);
      }
      if (!res.ok) throw new RpcError(CONNECT_CODES[body.code] ?? 'UNKNOWN', body.message ?? '');
      return body;
    },
    close() {},
  };
}

let packageDefinition: protoLoader.PackageDefinition | undefined;
export function loadPackage() {
  packageDefinition ??= protoLoader.loadSync(
    ['taskapi/v1/tenant.proto', 'taskapi/v1/worker.proto', 'taskapi/v1/project.proto', 'taskapi/v1/task.proto'],
    { includeDirs: [PROTO_DIR], longs: String, enums: String, defaults: false, oneofs: true },
  );
  return grpc.loadPackageDefinition(packageDefinition) as Json;
}

/**
 * Names of the API's fields of a well-known type, read from the .proto files (so a new
 * Timestamp or Struct field needs no change here). Field names are unique enough in this API:
 * no name is a Timestamp in one message and something else in another.
 */
function fieldsOfType(typeName: string): Set<string> {
  loadPackage();
  const names = new Set<string>();
  for (const [name, def] of Object.entries(packageDefinition!)) {
    if (!name.startsWith('taskapi.')) continue;
    for (const f of (def as Json).type?.field ?? []) if (f.typeName === typeName) names.add(f.name);
  }
  return names;
}
let wellKnown: { timestamps: Set<string>; structs: Set<string> } | undefined;
const wellKnownFields = () =>
  (wellKnown ??= {
    timestamps: fieldsOfType('google.protobuf.Timestamp'),
    structs: fieldsOfType('google.protobuf.Struct'),
  });

function toStructValue(v: Json): Json {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toStructValue) } };
  return { structValue: toStruct(v) };
}
const toStruct = (o: Json) => ({
  fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toStructValue(v)])),
});
function fromStructValue(v: Json): Json {
  switch (v.kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
    case 'stringValue':
    case 'boolValue':
      return v[v.kind];
    case 'listValue':
      return (v.listValue.values ?? []).map(fromStructValue);
    case 'structValue':
      return fromStruct(v.structValue);
  }
  return null;
}
const fromStruct = (s: Json) =>
  Object.fromEntries(Object.entries(s.fields ?? {}).map(([k, v]) => [k, fromStructValue(v)]));

/** Proto-JSON-style request → grpc-js object. */
export function toGrpc(value: Json, key = ''): Json {
  if (value === null || value === undefined) return value;
  const { timestamps: TIMESTAMP_FIELDS, structs: STRUCT_FIELDS } = wellKnownFields();
  if (TIMESTAMP_FIELDS.has(key) && typeof value === 'string') {
    const ms = Date.parse(value);
    return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
  }
  if (STRUCT_FIELDS.has(key) && typeof value === 'object') return toStruct(value);
  if (key === 'updateMask' && typeof value === 'string') return { paths: value.split(',').filter(Boolean) };
  if (Array.isArray(value)) return value.map((v) => toGrpc(v));
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toGrpc(v, k)]));
  return value;
}

/** grpc-js response object → proto-JSON-style (defaults omitted like Connect does). */
export function fromGrpc(value: Json, key = ''): Json {
  if (value === null || value === undefined) return undefined;
  const { timestamps: TIMESTAMP_FIELDS, structs: STRUCT_FIELDS } = wellKnownFields();
  if (TIMESTAMP_FIELDS.has(key) && typeof value === 'object') {
    const ms = Number(value.seconds) * 1000 + Math.floor((value.nanos ?? 0) / 1e6);
    return new Date(ms).toISOString();
  }
  if (STRUCT_FIELDS.has(key) && typeof value === 'object') return fromStruct(value);
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map((v) => fromGrpc(v));
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'lookup') continue; // oneof discriminator added by proto-loader
      const converted = fromGrpc(v, k);
      if (converted !== undefined) out[k] = converted;
    }
    return out;
  }
  if (
    value === '' ||
    value === '0' ||
    value === false ||
    value === 0 ||
    (typeof value === 'string' && value.endsWith('_UNSPECIFIED'))
  )
    return undefined;
  return value;
}

export function grpcClient(port: number, baseHeaders: Record<string, string> = {}): ApiClient {
  const pkg = loadPackage().taskapi.v1;
  const stubs = new Map<string, grpc.Client>();
  const stub = (service: string): Json => {
    let s = stubs.get(service);
    if (!s) {
      s = new pkg[service](`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': 16 * 1024 * 1024,
      }) as grpc.Client;
      stubs.set(service, s);
    }
    return s;
  };
  return {
    call(service, method, request = {}, options = {}) {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries({ ...baseHeaders, ...options.headers })) metadata.set(k, v);
      const fn = method.charAt(0).toLowerCase() + method.slice(1);
      const callOptions: grpc.CallOptions =
        options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
      return new Promise((resolve, reject) => {
        const call = stub(service)[fn](
          toGrpc(request),
          metadata,
          callOptions,
          (err: grpc.ServiceError | null, res: Json) => {
            if (err) reject(new RpcError(CODE_NAMES[err.code] ?? 'UNKNOWN', err.details));
            else resolve(fromGrpc(res) ?? {});
          },
        );
        options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
      });
    },
    close() {
      for (const s of stubs.values()) s.close();
    },
  };
}
