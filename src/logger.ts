/**
 * Logging: pino, one JSON line per event on stderr, behind the small `Logger` interface the code
 * calls (`logger.info(msg, fields)`), so that call sites never depend on pino's argument order.
 *
 * - Secrets are removed by configuration (`redact`), wherever a field of that name appears.
 * - `err` fields are serialized with stack, cause chain and code.
 * - An error or warning that repeats (same message, same error) is written once, then counted:
 *   one summary line per interval instead of one line per failed call during an outage.
 * - Lines are written in batches (4 KiB, or every 200 ms when quieter), not one write(2) per
 *   line: with a line per call, the system call was a tenth of a GetTask's CPU. Pino flushes
 *   what is buffered when the process exits; a SIGKILL loses at most those 200 ms.
 * - The per-call line (`logger.call`) is built from fixed fields that never hold a secret, so it
 *   skips the redaction pass, which costs as much as formatting the line.
 */
import pino, { type DestinationStream } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** The line of a finished call: `fields` are the call record's, never a secret (not redacted). */
  call(level: 'debug' | 'info', fields: Record<string, unknown>): void;
}

/** Field names whose values never reach the log, at the top level and one level down. */
const SECRET_FIELDS = [
  'authorization',
  'password',
  'secret',
  'adminToken',
  'apiKey',
  'token',
  'pageTokenSecret',
  'cookie',
];
export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'headers.authorization',
  'req.headers.authorization',
  'err.config.password',
];

/** How long identical errors are counted before one summary line is written. */
export const DEFAULT_REPEAT_INTERVAL_MS = 10_000;

const MAX_SERIES = 1_000;

export interface LoggerOptions {
  /** Where lines go (tests); default stderr. */
  readonly write?: (line: string) => void;
  readonly repeatIntervalMs?: number;
}

function plain(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!fields) return undefined;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v !== 'bigint') continue;
    out ??= { ...fields };
    out[k] = v.toString();
  }
  return out ?? fields;
}

/** What makes two error lines "the same": the message and the error, not the call's request id. */
function repeatKey(level: string, msg: string, fields: Record<string, unknown> | undefined): string {
  const err = fields?.err as { name?: unknown; code?: unknown; message?: unknown } | undefined;
  const kind = fields?.kind ?? '';
  const errKey = err && typeof err === 'object' ? `${String(err.name)}|${String(err.code)}|${String(err.message)}` : '';
  return `${level}\0${msg}\0${String(kind)}\0${errKey}`;
}

/** @param options Or, as before pino, just the function that writes each line. */
export function createLogger(level: LogLevel, options: LoggerOptions | ((line: string) => void) = {}): Logger {
  if (typeof options === 'function') options = { write: options };
  const destination: DestinationStream = options.write ? { write: options.write } : buffered();
  const shared = {
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.errWithCause },
  };
  const base = pino({ ...shared, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
  const calls = pino(shared, destination);
  const intervalMs = options.repeatIntervalMs ?? DEFAULT_REPEAT_INTERVAL_MS;
  // Series of identical warnings/errors: the first line is written in full, the rest counted.
  const repeats = new Map<
    string,
    { level: 'warn' | 'error'; msg: string; fields?: Record<string, unknown>; count: number }
  >();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    for (const [key, r] of repeats) {
      // A quiet interval ends the series: its next occurrence is written in full again.
      if (r.count === 0) {
        repeats.delete(key);
        continue;
      }
      base[r.level]({ ...r.fields, repeated: r.count, intervalMs }, `${r.msg} (repeated ${r.count} times)`);
      r.count = 0;
    }
    if (repeats.size > 0) schedule();
  };
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(flush, intervalMs);
    timer.unref();
  };
  const summarized = (lvl: 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
    if (!base.isLevelEnabled(lvl)) return;
    const key = repeatKey(lvl, msg, fields);
    const series = repeats.get(key);
    if (series) {
      series.count++;
      series.fields = plain(fields);
      return;
    }
    // Errors that differ every time (ids in the message) are not worth keeping.
    if (repeats.size < MAX_SERIES) {
      repeats.set(key, { level: lvl, msg, count: 0 });
      schedule();
    }
    base[lvl](plain(fields) ?? {}, msg);
  };
  return {
    debug: (msg, fields) => base.debug(plain(fields) ?? {}, msg),
    info: (msg, fields) => base.info(plain(fields) ?? {}, msg),
    warn: summarized('warn'),
    error: summarized('error'),
    call: (lvl, fields) => calls[lvl](fields, 'call'),
  };
}

const BATCH_BYTES = 4096;
const BATCH_INTERVAL_MS = 200;

const batched = new Set<ReturnType<typeof pino.destination>>();

/**
 * Writes out every batched line, waiting for writes in flight (at most `timeoutMs`). Call it
 * before `process.exit`: pino's own exit hook writes synchronously what is still buffered, but
 * not a batch whose asynchronous write is under way at that moment.
 */
export async function flushLogs(timeoutMs = 1_000): Promise<void> {
  const flushes = [...batched].map(
    (stream) =>
      new Promise<void>((resolve) => {
        try {
          stream.flush(() => resolve());
        } catch {
          resolve();
        }
      }),
  );
  await Promise.race([Promise.all(flushes), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
}

/** stderr, written in batches (see the top of this file). */
function buffered(): DestinationStream {
  const stream = pino.destination({ dest: 2, sync: false, minLength: BATCH_BYTES });
  batched.add(stream);
  // The quiet minutes: what waits in the buffer goes out within the interval. Only when a line
  // came since the last tick: sonic-boom's flush writes even an empty buffer.
  let pending = false;
  setInterval(() => {
    if (!pending) return;
    pending = false;
    try {
      stream.flush();
    } catch {
      // Not ready yet (sonic-boom still opening), or stderr closed: the next line tries again.
      pending = true;
    }
  }, BATCH_INTERVAL_MS).unref();
  return {
    write(line: string) {
      pending = true;
      stream.write(line);
    },
  };
}

export const silentLogger: Logger = createLogger('silent', { write: () => {} });
