#!/usr/bin/env bash
# Fails when src/gen differs from what `npm run generate` makes of proto/ (someone edited a
# .proto without regenerating, or edited generated code by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx --no-install buf generate -o "$out"
if ! diff -r "$out/src/gen" src/gen; then
  echo "src/gen is out of date: run npm run generate and commit the result" >&2
  exit 1
fi
echo "generated code matches the protos"
