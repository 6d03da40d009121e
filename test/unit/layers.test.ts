/**
 * Calls flow one way: RPC handler → service → repository → src/db. The RPC layer sees service
 * and domain types only (never a repository's), services never see the RPC layer, and
 * repositories and src/db see neither.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Each file's imports, as paths below src/ (`services/tasks.js`). */
function importsOf(layer: string): { file: string; target: string }[] {
  return files(join(SRC, layer)).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)'/gms)].map((m) => ({
      file: relative(SRC, file),
      target: relative(SRC, join(file, '..', m[1]!)),
    })),
  );
}

const forbidden = (layer: string, ...below: string[]) =>
  importsOf(layer).filter(({ target }) => below.some((b) => target.startsWith(`${b}/`)));

describe('layers', () => {
  it('the RPC layer imports no repository', () => {
    expect(forbidden('rpc', 'repositories')).toEqual([]);
  });
  it('services import nothing of the RPC layer', () => {
    expect(forbidden('services', 'rpc')).toEqual([]);
  });
  it('repositories and src/db import neither services nor the RPC layer', () => {
    expect([
      ...forbidden('repositories', 'services', 'rpc'),
      ...forbidden('db', 'services', 'rpc', 'repositories'),
    ]).toEqual([]);
  });
});
