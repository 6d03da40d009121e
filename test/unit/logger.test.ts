import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { traceIdOf } from '../../src/rpc/call-log.js';

function capture(level: Parameters<typeof createLogger>[0] = 'debug', repeatIntervalMs = 60_000) {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (l) => lines.push(l), repeatIntervalMs });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, parsed };
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('logger', () => {
  it('writes one JSON line per event with level name, ISO time, message and fields (bigints as strings)', () => {
    const { logger, lines, parsed } = capture();
    logger.info('listening', { port: 50051, tenantId: 12n });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(parsed()[0]).toMatchObject({ level: 'info', msg: 'listening', port: 50051, tenantId: '12' });
    expect(new Date(parsed()[0]!.time as string).toISOString()).toBe(parsed()[0]!.time);
  });

  it('writes the line of a call with its fields, at the level asked, like any other line', () => {
    const { logger, parsed } = capture('info');
    logger.call('info', { service: 'taskapi.v1.TaskService', method: 'GetTask', code: 'OK', statements: 3 });
    logger.call('debug', { service: 'grpc.health.v1.Health', method: 'Check', code: 'OK' });
    expect(parsed()).toHaveLength(1);
    expect(parsed()[0]).toMatchObject({ level: 'info', msg: 'call', method: 'GetTask', code: 'OK', statements: 3 });
  });

  it('drops what is below its level', () => {
    const { logger, lines } = capture('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    expect(lines).toHaveLength(1);
    expect(capture('silent').lines).toHaveLength(0);
  });

  it('redacts authorization and secrets wherever they appear', () => {
    const { logger, lines } = capture();
    logger.info('call', {
      authorization: 'Bearer tk_1_sekrit1',
      headers: { authorization: 'Bearer tk_1_sekrit2' },
      request: { secret: 'sekrit3', password: 'sekrit4' },
      adminToken: 'sekrit5',
    });
    expect(lines[0]).not.toMatch(/sekrit/);
    expect(lines[0]).toContain('[redacted]');
  });

  it('serializes errors with stack and cause', () => {
    const { logger, parsed } = capture();
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    logger.error('database error', { err: new Error('the database is unavailable', { cause }) });
    const err = parsed()[0]!.err as {
      message: string;
      stack: string;
      cause: { message: string; code?: string; stack: string };
    };
    expect(err.message).toBe('the database is unavailable');
    expect(err.stack).toMatch(/\n\s+at /);
    expect(err.cause).toMatchObject({ message: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED' });
    expect(err.cause.stack).toMatch(/\n\s+at /);
  });

  it('summarizes an identical error repeated during an outage: the first line, then one count per interval', async () => {
    const { logger, parsed } = capture('info', 100);
    const outage = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    for (let i = 0; i < 500; i++)
      logger.error('database error', { requestId: `r${i}`, kind: 'connection', err: outage() });
    logger.error('unexpected error', { err: new Error('something else') });
    expect(parsed().map((l) => l.msg)).toEqual(['database error', 'unexpected error']);
    expect(parsed()[0]!.requestId).toBe('r0');
    await until(() => parsed().length === 3);
    expect(parsed()[2]).toMatchObject({
      level: 'error',
      msg: 'database error (repeated 499 times)',
      repeated: 499,
      requestId: 'r499',
    });
    // A quiet interval ends the series: the next occurrence is written in full again.
    await new Promise((r) => setTimeout(r, 350));
    logger.error('database error', { requestId: 'again', kind: 'connection', err: outage() });
    expect(parsed().at(-1)).toMatchObject({ msg: 'database error', requestId: 'again' });
    expect(parsed()).toHaveLength(4);
  });
});

describe('traceIdOf', () => {
  it('takes the trace id of a W3C traceparent', () => {
    expect(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe(
      '4bf92f3577b34da6a3ce929d0e0e4736',
    );
  });
  it.each([
    null,
    '',
    'garbage',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7',
  ])('ignores %j', (header) => {
    expect(traceIdOf(header)).toBeNull();
  });
});
