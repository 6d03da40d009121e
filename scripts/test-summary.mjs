// One plain closing line for the CI log, `N passed, N failed, N skipped`, summed over the JSON
// reports of every vitest run given. A report that is missing (the run died before writing it),
// and a test file that failed outside its tests, count as one failure each, so the line never
// looks better than the run was. Plain JavaScript: CI runs it on the system's Node.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
const notes = [];
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    failed += 1;
    notes.push(`${file}: no report (the run did not finish)`);
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
  // A file whose setup failed (beforeAll, import) reports its tests as skipped, not failed:
  // count such a file as one failure.
  for (const t of r.testResults ?? []) {
    if (t.status === 'failed' && !(t.assertionResults ?? []).some((a) => a.status === 'failed')) {
      failed += 1;
      notes.push(`${t.name}: failed outside a test: ${String(t.message ?? '').split('\n')[0]}`);
    }
  }
}
for (const note of notes) console.log(note);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
