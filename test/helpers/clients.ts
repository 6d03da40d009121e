/**
 * Typed clients of the API for tests, one per protocol, with one shape so that a test runs
 * unchanged over both: `api.TaskService.createTask({ ... }, { timeoutMs, headers, signal })`
 * resolves to the generated response message and fails with a ConnectError.
 *
 * - Connect: connect-es `createClient` over a Connect JSON transport on HTTP/1.1 (what agent
 *   orchestrators use; JSON also exercises the server's JSON mapping).
 * - gRPC: `@grpc/grpc-js`, the client our users call us with, driven by the same generated
 *   descriptors (protobuf-es encodes and decodes the messages; no .proto loading at run time).
 *   Its failures are turned into ConnectError with the same code, so assertions are shared.
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type Message,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import {
  type CallOptions,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  makeAnyClient,
  type Transport,
} from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { ProjectService } from '../../src/gen/taskapi/v1/project_pb.js';
import { TaskService } from '../../src/gen/taskapi/v1/task_pb.js';
import { TenantService } from '../../src/gen/taskapi/v1/tenant_pb.js';
import { WorkerService } from '../../src/gen/taskapi/v1/worker_pb.js';

/** Every service of the API, by name. A new service added here gets a client of both protocols. */
export const SERVICES = { TenantService, WorkerService, ProjectService, TaskService } as const;
export type ServiceName = keyof typeof SERVICES;

/**
 * A response as tests see it: its message fields (`task` of CreateTaskResponse, ...) typed as
 * present. The generated types make every message field optional; in a test, a missing one
 * fails at first use, which is the assertion we want, without a `!` on every line. (Check
 * for absence with `toBeUndefined()`, which still compiles.)
 */
export type Filled<M> = Omit<M, MessageKeys<M>> & { [K in MessageKeys<M>]-?: NonNullable<M[K]> };
type MessageKeys<M> = { [K in keyof M]-?: NonNullable<M[K]> extends Message ? K : never }[keyof M];

/** connect-es's Client<S>, with Filled responses. */
export type TypedClient<S extends DescService> = {
  [P in keyof S['method']]: S['method'][P] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<Filled<MessageShape<O>>>
    : S['method'][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<Filled<MessageShape<O>>>
      : never;
};

export type ApiClient = { readonly [S in ServiceName]: TypedClient<(typeof SERVICES)[S]> } & {
  close(): void;
};

export type { CallOptions };

const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Who ends a Connect call at its `timeoutMs`: connect-es ends it on the client's side by default
 * ('client'); with 'server' the deadline is only sent (connect-timeout-ms) and the client waits
 * for the server's answer, as a plain HTTP client does, so that a test sees the SERVER keep
 * (or miss) the deadline. (grpc-js always ends calls at their deadline itself.)
 */
export type Deadlines = 'client' | 'server';

/** `transport`, with each call's timeout sent as connect-timeout-ms and left to the server. */
function serverDeadlines(transport: Transport): Transport {
  const header = (init: ConstructorParameters<typeof Headers>[0], timeoutMs: number | undefined) => {
    const h = new Headers(init);
    if (timeoutMs !== undefined) h.set('connect-timeout-ms', String(timeoutMs));
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, init, input, contextValues) =>
      transport.unary(method, signal, undefined, header(init, timeoutMs), input, contextValues),
    stream: (method, signal, timeoutMs, init, input, contextValues) =>
      transport.stream(method, signal, undefined, header(init, timeoutMs), input, contextValues),
  };
}

/** Connect JSON over HTTP/1.1; `baseHeaders` go on every call unless the call sets them itself. */
export function connectClient(
  port: number,
  baseHeaders: Record<string, string> = {},
  options: { deadlines?: Deadlines } = {},
): ApiClient {
  const withHeaders: Interceptor = (next) => (req) => {
    for (const [k, v] of Object.entries(baseHeaders)) if (!req.header.has(k)) req.header.set(k, v);
    return next(req);
  };
  const connect = createConnectTransport({
    baseUrl: `http://127.0.0.1:${port}`,
    httpVersion: '1.1',
    useBinaryFormat: false,
    interceptors: [withHeaders],
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  const transport = options.deadlines === 'server' ? serverDeadlines(connect) : connect;
  const clients = Object.fromEntries(
    Object.entries(SERVICES).map(([name, service]) => [name, createClient(service as DescService, transport)]),
  );
  return { ...(clients as unknown as Omit<ApiClient, 'close'>), close() {} };
}

/** The ConnectError of a failed grpc-js call: the same code, the server's message, its trailers. */
function toConnectError(err: grpc.ServiceError): ConnectError {
  const metadata = new Headers();
  for (const [k, v] of Object.entries(err.metadata?.getMap() ?? {})) {
    if (typeof v === 'string') metadata.set(k, v);
  }
  const code = err.code in Code ? (err.code as number as Code) : Code.Unknown;
  return new ConnectError(err.details, code, metadata);
}

function grpcMetadata(base: Record<string, string>, headers: CallOptions['headers']): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(base)) metadata.set(k, v);
  for (const [k, v] of new Headers(headers ?? {}).entries()) metadata.set(k, v);
  return metadata;
}

/** The methods of `service` over a grpc-js channel, typed by the generated descriptors. */
function grpcServiceClient(channel: grpc.Client, service: DescService, baseHeaders: Record<string, string>) {
  return makeAnyClient(service, (method: DescMethod) => {
    const path = `/${service.typeName}/${method.name}`;
    const serialize = (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, message));
    const deserialize = (bytes: Buffer) => fromBinary(method.output, bytes);
    const start = (options: CallOptions) => ({
      metadata: grpcMetadata(baseHeaders, options.headers),
      callOptions: options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs },
    });
    switch (method.methodKind) {
      case 'unary':
        return (init: Record<string, unknown>, options: CallOptions = {}) => {
          const { metadata, callOptions } = start(options);
          return new Promise((resolve, reject) => {
            const call = channel.makeUnaryRequest(
              path,
              serialize,
              deserialize,
              create(method.input, init),
              metadata,
              callOptions,
              (err, res) => (err ? reject(toConnectError(err)) : resolve(res)),
            );
            options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
          });
        };
      case 'server_streaming':
        return (init: Record<string, unknown>, options: CallOptions = {}) => {
          const { metadata, callOptions } = start(options);
          const call = channel.makeServerStreamRequest(
            path,
            serialize,
            deserialize,
            create(method.input, init),
            metadata,
            callOptions,
          );
          options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
          return (async function* () {
            try {
              for await (const message of call) yield message;
            } catch (err) {
              throw err instanceof Error && 'code' in err ? toConnectError(err as grpc.ServiceError) : err;
            }
          })();
        };
      default:
        // No client streaming in this API.
        return null;
    }
  });
}

/** @param ca Call over TLS, trusting this CA certificate (PEM). */
const grpcChannel = (port: number, ca?: Buffer) =>
  new grpc.Client(`127.0.0.1:${port}`, ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // TLS names a host, not an IP address (RFC 6066); the test certificate is for localhost too.
    ...(ca ? { 'grpc.ssl_target_name_override': 'localhost' } : {}),
  });

/** grpc-js over HTTP/2, typed by the generated descriptors; over TLS when `options.ca` is given. */
export function grpcClient(
  port: number,
  baseHeaders: Record<string, string> = {},
  options: { ca?: Buffer } = {},
): ApiClient {
  const channel = grpcChannel(port, options.ca);
  const clients = Object.fromEntries(
    Object.entries(SERVICES).map(([name, service]) => [
      name,
      grpcServiceClient(channel, service as DescService, baseHeaders),
    ]),
  );
  return {
    ...(clients as unknown as Omit<ApiClient, 'close'>),
    close() {
      channel.close();
    },
  };
}

/** A typed client of one service outside the API (grpc.health.v1.Health, ...). */
export function serviceClient<S extends DescService>(
  protocol: 'grpc' | 'connect',
  port: number,
  service: S,
): TypedClient<S> & { close(): void } {
  if (protocol === 'connect') {
    const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' });
    return Object.assign(createClient(service, transport) as unknown as TypedClient<S>, { close() {} });
  }
  const channel = grpcChannel(port);
  return Object.assign(grpcServiceClient(channel, service, {}) as unknown as TypedClient<S>, {
    close: () => channel.close(),
  });
}

export { ProjectStatus, TaskPriority, TaskStatus, WorkerType } from '../../src/gen/taskapi/v1/resources_pb.js';
export { TaskOrderBy, TaskView } from '../../src/gen/taskapi/v1/task_pb.js';
