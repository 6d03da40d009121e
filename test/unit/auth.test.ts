import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { subdomainOf } from '../../src/services/auth.js';
import { hashSecret, parseApiKey } from '../../src/services/tenants.js';

describe('subdomainOf', () => {
  it.each([
    ['acme.tasks.example.com', 'acme'],
    ['acme.tasks.example.com:443', 'acme'],
    ['ACME.Tasks.Example.COM', 'acme'],
    ['acme.tasks.example.com.', 'acme'],
    [' acme.tasks.example.com ', 'acme'],
    ['acme.localhost', 'acme'],
    ['acme.localhost:50051', 'acme'],
    ['globex-2.tasks.example.com:8443', 'globex-2'],
  ])('%j → %j', (host, expected) => {
    expect(subdomainOf(host)).toBe(expected);
  });

  it.each([
    ['localhost'],
    ['localhost:50051'],
    ['127.0.0.1'],
    ['127.0.0.1:50051'],
    ['10.1.2.3:443'],
    ['[::1]'],
    ['[::1]:50051'],
    ['[2001:db8::1]:443'],
    ['example.com'],
    ['example.com:443'],
    [''],
    ['   '],
  ])('%j → null', (host) => {
    expect(subdomainOf(host)).toBeNull();
  });

  it('null → null', () => {
    expect(subdomainOf(null)).toBeNull();
  });
});

describe('API keys', () => {
  const random43 = () => randomBytes(32).toString('base64url');

  it('a key in the issued format tk_<tenant>_<43 characters> names its tenant', () => {
    const secret = `tk_42_${random43()}`;
    expect(secret.length).toBe('tk_42_'.length + 43);
    expect(parseApiKey(secret)).toEqual({ tenantId: 42n });
    expect(parseApiKey(`tk_1_${'A'.repeat(43)}`)).toEqual({ tenantId: 1n });
    expect(parseApiKey(`tk_9223372036854775807_${'-_'.repeat(21)}x`)).toEqual({ tenantId: 9223372036854775807n });
  });

  it.each([
    ['42 random characters', `tk_42_${'a'.repeat(42)}`],
    ['44 random characters', `tk_42_${'a'.repeat(44)}`],
    ['no prefix', `42_${'a'.repeat(43)}`],
    ['another prefix', `tx_42_${'a'.repeat(43)}`],
    ['upper-case prefix', `TK_42_${'a'.repeat(43)}`],
    ['tenant 0', `tk_0_${'a'.repeat(43)}`],
    ['leading zero', `tk_042_${'a'.repeat(43)}`],
    ['negative tenant', `tk_-42_${'a'.repeat(43)}`],
    ['tenant not a number', `tk_acme_${'a'.repeat(43)}`],
    ['no tenant', `tk__${'a'.repeat(43)}`],
    ['tenant beyond bigint', `tk_9223372036854775808_${'a'.repeat(43)}`],
    ['tenant of 20 digits', `tk_12345678901234567890_${'a'.repeat(43)}`],
    ['a character outside base64url', `tk_42_${'a'.repeat(42)}+`],
    ['padding', `tk_42_${'a'.repeat(42)}=`],
    ['surrounding space', ` tk_42_${'a'.repeat(43)} `],
    ['trailing newline', `tk_42_${'a'.repeat(43)}\n`],
    ['empty', ''],
  ])('%s → null', (_, secret) => {
    expect(parseApiKey(secret)).toBeNull();
  });

  it('hashSecret is the SHA-256 of the secret', () => {
    const h = hashSecret('abc');
    expect(Buffer.isBuffer(h)).toBe(true);
    expect(h.toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const secret = `tk_7_${random43()}`;
    expect(hashSecret(secret).equals(createHash('sha256').update(secret).digest())).toBe(true);
    expect(hashSecret(secret).equals(hashSecret(`${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`))).toBe(
      false,
    );
  });
});
