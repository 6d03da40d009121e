/**
 * grpc.health.v1.Health: SERVING only while the database answers (and the server is not
 * shutting down). The empty service name and every served service share that one status.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  type Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from '../gen/grpc/health/v1/health_pb.js';

export interface HealthOptions {
  /** Fully qualified names of the services this server serves. */
  readonly services: readonly string[];
  /** True while the database answers. */
  readonly probe: () => Promise<boolean>;
  /** True once shutdown has begun. */
  readonly stopping: () => boolean;
  readonly watchIntervalMs?: number;
}

/** How long one database probe answers for: load balancers may check many times a second. */
const PROBE_TTL_MS = 1_000;

export function healthService(options: HealthOptions): ServiceImpl<typeof Health> {
  const known = new Set(['', ...options.services]);
  let probe: { at: number; result: Promise<boolean> } | undefined;
  const databaseAnswers = () => {
    // Concurrent checks share one probe; a failed probe is not cached.
    if (!probe || Date.now() - probe.at > PROBE_TTL_MS) {
      const result = options.probe();
      probe = { at: Date.now(), result };
      void result.then((ok) => {
        if (!ok && probe?.result === result) probe = undefined;
      });
    }
    return probe.result;
  };
  const current = async () => (!options.stopping() && (await databaseAnswers()) ? Status.SERVING : Status.NOT_SERVING);
  return {
    async check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return { status: await current() };
    },
    async list() {
      const status = await current();
      return {
        statuses: Object.fromEntries([...known].map((name) => [name, create(HealthCheckResponseSchema, { status })])),
      };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
        return;
      }
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = await current();
        if (status !== last) yield { status };
        last = status;
        // A stopping server says NOT_SERVING once and ends the stream, so that open watches do
        // not hold the shutdown for its whole grace period.
        if (options.stopping()) return;
        await sleep(options.watchIntervalMs ?? 1_000, undefined, { signal: ctx.signal }).catch(() => {});
      }
    },
  };
}
