/** The standard health check (grpc.health.v1.Health), as load balancers and probes call it. */
import { Health, HealthCheckResponse_ServingStatus } from '../../src/gen/grpc/health/v1/health_pb.js';
import type { Protocol } from './app.js';
import { serviceClient } from './clients.js';

export { HealthCheckResponse_ServingStatus as ServingStatus };

/**
 * The serving status of `service` ('' = the server) over gRPC or Connect; fails with a
 * ConnectError when the server answers with an error, or when it does not answer within
 * `timeoutMs` (a generous bound: a stalled server must fail the test, a slow machine must not).
 */
export async function healthStatus(
  protocol: Protocol,
  port: number,
  service = '',
  timeoutMs = 20_000,
): Promise<HealthCheckResponse_ServingStatus> {
  const client = serviceClient(protocol, port, Health);
  try {
    return (await client.check({ service }, { timeoutMs })).status;
  } finally {
    client.close();
  }
}
