import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseTimestamptz, TYPE_PARSERS } from '../../src/db/timestamps.js';

const pgParse = pg.types.getTypeParser(1184, 'text') as (s: string) => unknown;
const same = (s: string) => expect(parseTimestamptz(s), s).toEqual(pgParse(s));

describe('the fast timestamptz parser', () => {
  it('gives the Date pg would give for the shapes PostgreSQL writes', () => {
    for (const s of [
      '2026-11-30 11:58:10.165123+00',
      '2026-11-30 11:58:10+00',
      '2026-11-30 11:58:10.1+00',
      '2026-11-30 11:58:10.99+00',
      '2026-11-30 11:58:10.999999+00',
      '2026-01-01 00:00:00.000001-05',
      '1999-12-31 23:59:59.5+05:30',
      '2026-06-15 12:00:00.123456-03:30',
      '1883-11-18 12:03:58+00:03:58',
      '2026-02-28 23:30:00+14',
      '9999-12-31 23:59:59.999999+00',
    ]) {
      same(s);
    }
  });

  it('leaves the rare shapes to pg: years before 100 or past 9999, BC, infinity', () => {
    for (const s of [
      '0099-01-01 00:00:00+00',
      '0001-01-01 00:00:00+00 BC',
      '2026-11-30 11:58:10.5+00 BC',
      '12026-11-30 11:58:10+00',
      'infinity',
      '-infinity',
    ]) {
      same(s);
    }
  });

  it('agrees with pg on random instants and offsets', () => {
    for (let i = 0; i < 2000; i++) {
      const ms = Date.UTC(1900, 0, 1) + Math.floor(Math.random() * 300 * 365 * 86_400_000);
      const iso = new Date(ms).toISOString(); // 2026-11-30T11:58:10.165Z
      const micros = String(Math.floor(Math.random() * 1000)).padStart(3, '0');
      const offset = ['+00', '-05', '+05:30', '-09:30', '+13:45'][i % 5];
      const fraction = i % 7 === 0 ? '' : `.${iso.slice(20, 23)}${micros}`.replace(/0+$/, '');
      same(`${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction === '.' ? '' : fraction}${offset}`);
    }
  });

  it('is what the pool hands pg for timestamptz text, and pg’s own parsers for the rest', () => {
    expect(TYPE_PARSERS.getTypeParser(1184, 'text')).toBe(parseTimestamptz);
    expect(TYPE_PARSERS.getTypeParser(20, 'text')).toBe(pg.types.getTypeParser(20, 'text'));
    expect(TYPE_PARSERS.getTypeParser(1184, 'binary')).toBe(pg.types.getTypeParser(1184, 'binary'));
  });
});
