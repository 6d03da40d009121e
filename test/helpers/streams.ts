/**
 * Server-streaming calls of the typed clients (test/helpers/clients.ts), collected as they
 * arrive so that a test can wait for a condition on what it has received so far, cancel the
 * call, and see how it ended.
 */
import { type CallOptions, Code, ConnectError } from '@connectrpc/connect';

export interface ServerStream<T> {
  /** Messages received so far, in order. */
  readonly messages: T[];
  /** How the stream ended: null when OK, else its error. Never rejects. */
  readonly ended: Promise<ConnectError | null>;
  readonly done: boolean;
  /**
   * Resolves with the messages once `predicate(messages)` holds; rejects when the stream ends
   * first ("stream ended ...") or after `timeoutMs` ("condition not met ..."), naming what came.
   */
  until(predicate: (messages: readonly T[]) => boolean, timeoutMs?: number): Promise<T[]>;
  /** The first `count` messages, once they are there (see `until`). */
  take(count: number, timeoutMs?: number): Promise<T[]>;
  /** Cancels the call from the client's side; `ended` then carries CANCELED. */
  cancel(): void;
}

/**
 * Starts a server-streaming call and collects it, e.g.
 * `collect((o) => api.TaskService.watchTasks({ projectId }, o))`. `options` are passed to the
 * call along with the signal that `cancel()` aborts.
 */
export function collect<T>(
  open: (options: CallOptions) => AsyncIterable<T>,
  options: Omit<CallOptions, 'signal'> = {},
): ServerStream<T> {
  const messages: T[] = [];
  const checks = new Set<() => void>();
  const abort = new AbortController();
  let done = false;
  const notify = () => {
    for (const check of [...checks]) check();
  };
  const ended = (async (): Promise<ConnectError | null> => {
    try {
      for await (const m of open({ ...options, signal: abort.signal })) {
        messages.push(m);
        notify();
      }
      return null;
    } catch (err) {
      return ConnectError.from(err, abort.signal.aborted ? Code.Canceled : Code.Unknown);
    } finally {
      done = true;
      // After `ended` resolved, so that a check that sees `done` reads the outcome.
      queueMicrotask(notify);
    }
  })();

  const until = (predicate: (messages: readonly T[]) => boolean, timeoutMs = 30_000) =>
    new Promise<T[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        checks.delete(check);
        clearTimeout(timer);
      };
      function check() {
        if (predicate(messages)) {
          stop();
          resolve(messages);
        } else if (done) {
          stop();
          void ended.then((err) =>
            reject(
              new Error(
                `stream ended (${err ? `${Code[err.code]}: ${err.rawMessage}` : 'OK'}) after ${messages.length} messages`,
              ),
            ),
          );
        }
      }
      timer = setTimeout(() => {
        checks.delete(check);
        reject(new Error(`condition not met within ${timeoutMs} ms; ${messages.length} messages: ${show(messages)}`));
      }, timeoutMs);
      checks.add(check);
      check();
    });

  return {
    messages,
    ended,
    get done() {
      return done;
    },
    until,
    take: async (count, timeoutMs) => (await until((m) => m.length >= count, timeoutMs)).slice(0, count),
    cancel: () => abort.abort(),
  };
}

const show = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)).slice(0, 2000);
