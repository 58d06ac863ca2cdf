#!/usr/bin/env bash
# build.sh DIR [BINARY]: Coraza with this directory's patches, for
# measuring and for an opt-in build; wafcanary's go.mod never points at it.
#
# Copies the Coraza module go.mod requires from the module cache to DIR,
# applies every *.patch here in order (any hunk that does not apply exactly
# fails the script: a new Coraza release needs the patches looked at
# again), and writes DIR.mod and DIR.sum, a copy of go.mod with a replace
# to DIR, for `go build -modfile=DIR.mod` / `go test -modfile=DIR.mod`.
# With BINARY, also builds ./cmd/wafcanary against it there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${1:?usage: build.sh DIR [BINARY]}"
bin="${2:-}"
cd "$root"
# Downloaded first (a no-op when cached): go list leaves Dir empty for a
# module not in the cache.
go mod download github.com/corazawaf/coraza/v3
src="$(go list -m -f '{{.Dir}}' github.com/corazawaf/coraza/v3)"
version="$(go list -m -f '{{.Version}}' github.com/corazawaf/coraza/v3)"
[ -d "$src" ] || { echo "build.sh: Coraza $version not found in the module cache" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
cp -r "$src" "$dir"
chmod -R u+w "$dir"
for p in "$here"/*.patch; do
  patch -s -d "$dir" -p1 --forward --fuzz=0 --no-backup-if-mismatch < "$p" ||
    { echo "build.sh: $(basename "$p") does not apply to Coraza $version" >&2; exit 1; }
done
abs="$(cd "$dir" && pwd)"
cp go.mod "$abs.mod"
cp go.sum "$abs.sum"
echo "replace github.com/corazawaf/coraza/v3 => $abs" >> "$abs.mod"
echo "build.sh: Coraza $version with $(ls "$here"/*.patch | wc -l) patches in $abs (-modfile=$abs.mod)" >&2
if [ -n "$bin" ]; then
  go build -pgo=off -modfile="$abs.mod" -o "$bin" ./cmd/wafcanary
fi
