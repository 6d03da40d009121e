/**
 * pg's type parsers, with a fast path for `timestamptz` text. pg parses every timestamptz with
 * postgres-date (three regular expressions and a split per value); a page of 50 tasks with their
 * workers carries some 350 of them, and that was the largest single item of a ListTasks' server
 * CPU. PostgreSQL's output with DateStyle ISO (the default, which this service never changes)
 * is fixed: `YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]]`. That shape is read digit by digit here;
 * anything else (years before 100 or past 9999, BC, infinity) goes to pg's own parser, and the
 * result is the same Date either way (milliseconds truncated, as postgres-date does).
 */
import pg from 'pg';

const TIMESTAMPTZ_OID = 1184;
const defaultParser = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date | number | null;

const ZERO = 48;

function digits(s: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) {
    const d = s.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** A timestamptz in PostgreSQL's ISO text form, as a Date. */
export function parseTimestamptz(s: string): Date | number | null {
  // 'YYYY-MM-DD HH:MM:SS+HH' is 22 characters at least.
  if (s.length < 22 || s.charCodeAt(4) !== 45 || s.charCodeAt(10) !== 32 || s.charCodeAt(13) !== 58) {
    return defaultParser(s);
  }
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if (year < 100 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return defaultParser(s);
  let i = 19;
  let ms = 0;
  if (s.charCodeAt(i) === 46) {
    // Fraction: the first three digits are the milliseconds; the rest is dropped.
    i++;
    let scale = 100;
    for (let d = s.charCodeAt(i) - ZERO; d >= 0 && d <= 9; d = s.charCodeAt(i) - ZERO) {
      ms += d * scale;
      scale /= 10;
      i++;
    }
    ms = Math.trunc(ms);
  }
  const sign = s.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return defaultParser(s);
  const rest = s.length - i - 1;
  // ±HH, ±HH:MM or ±HH:MM:SS and nothing after (a ' BC' suffix goes the slow way).
  if (rest !== 2 && rest !== 5 && rest !== 8) return defaultParser(s);
  const offH = digits(s, i + 1, 2);
  const offM = rest >= 5 ? digits(s, i + 4, 2) : 0;
  const offS = rest === 8 ? digits(s, i + 7, 2) : 0;
  if (offH < 0 || offM < 0 || offS < 0) return defaultParser(s);
  const offsetMs = (sign === 45 ? -1 : 1) * (offH * 3600 + offM * 60 + offS) * 1000;
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMs);
}

/** For pg's `types` option: pg's parsers, timestamptz text through the fast path. */
export const TYPE_PARSERS = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMPTZ_OID && format !== 'binary') return parseTimestamptz;
    return pg.types.getTypeParser(oid, format);
  },
};
