#!/usr/bin/env bash
# Builds the Go tools that the tests run (mongodump, mongorestore, ferretdb) from
# pinned sources on the Go module proxy into .tools/bin/ (git-ignored).
#
#   bash scripts/build-go-tools.sh [mongo-tools] [ferretdb]   (default: both)
#
# Downloads go to the default Go module cache, so they survive between runs and
# CI jobs on the same machine; only binaries and stamps are written under .tools/.
# A group whose binaries exist and whose stamp records the same recipe is skipped,
# so a warm run takes milliseconds.
set -euo pipefail

# --- pins (change a pin and the stamp no longer matches: the group is rebuilt) ---

# mongo-tools tags releases as "100.x.y", which is not semver, and the proxy
# refuses version lists and tag/branch queries for this module, so we pin an
# exact pseudo-version: master of 2025-07-15, after 100.12.2 (2025-06-04) and
# before 100.13.0 (2025-08-14).
MONGO_TOOLS_MOD=github.com/mongodb/mongo-tools
MONGO_TOOLS_VERSION=v0.0.0-20250715155915-887641268977
# The checksum database has no entry for this pseudo-version (the lookup 404s),
# so we skip it for this module and check the zip against this pin instead,
# which is what a go.sum line would do.
MONGO_TOOLS_SUM='h1:J9wFLko0N7sbovyHahuRw1NyfMUsNhaauLK87wQ3ruc='
MONGO_TOOLS_LABEL=100.12.2+887641268977
# No build tags: upstream's defaults are "gssapi failpoints"; gssapi needs cgo and
# libkrb5, failpoints is for their tests. TLS comes from Go's crypto/tls anyway.
MONGO_TOOLS_LDFLAGS="-X main.VersionStr=$MONGO_TOOLS_LABEL -X main.GitCommit=887641268977"

FERRETDB_MOD=github.com/FerretDB/FerretDB
FERRETDB_VERSION=v1.24.2 # v1.x: its SQLite backend is modernc.org/sqlite, pure Go
FERRETDB_PATCH="patched: createIndexes ignores ns" # see build_ferretdb

# Static, cgo-free binaries: no C toolchain or C libraries needed.
GO_BUILD_FLAGS=(-mod=mod -trimpath)
export CGO_ENABLED=0

# --- setup ---

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"

die() { echo "build-go-tools: $*" >&2; exit 1; }

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(mongo-tools ferretdb)
for g in "${groups[@]}"; do
  case "$g" in mongo-tools | ferretdb) ;; *) die "unknown tool group '$g' (expected: mongo-tools, ferretdb)" ;; esac
done

binaries() { # group -> binaries it provides
  case "$1" in mongo-tools) echo mongodump mongorestore ;; ferretdb) echo ferretdb ;; esac
}
recipe() { # group -> everything that decides its binaries; recorded in the stamp
  case "$1" in
    mongo-tools) echo "$MONGO_TOOLS_MOD@$MONGO_TOOLS_VERSION $MONGO_TOOLS_SUM ${GO_BUILD_FLAGS[*]} $MONGO_TOOLS_LDFLAGS" ;;
    ferretdb) echo "$FERRETDB_MOD@$FERRETDB_VERSION ${GO_BUILD_FLAGS[*]} $FERRETDB_PATCH" ;;
  esac
}
up_to_date() {
  local b
  [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$(recipe "$1")" ] || return 1
  for b in $(binaries "$1"); do [ -x "$BIN/$b" ] || return 1; done
}

# Fast path, before needing Go or a lock.
todo=()
for g in "${groups[@]}"; do up_to_date "$g" || todo+=("$g"); done
[ ${#todo[@]} -gt 0 ] || exit 0

command -v go >/dev/null || die "the 'go' command is not on PATH; install Go (1.24 or newer) to build ${todo[*]}"
mkdir -p "$BIN" "$STAMPS"

# Test files run in parallel and each may call this script: one builds, the
# others wait here and then find the stamp fresh.
exec 9>"$TOOLS/build.lock"
flock 9

WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

# field KEY < go-json: the string value of a top-level field of `go ... -json` output.
field() { sed -n "s/^\t\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }

# download MOD VERSION -> prints "DIR SUM" of the module in the module cache.
download() {
  local json err
  # Run outside any module so a go.mod in the caller's tree cannot interfere.
  json=$(cd "$WORK" && go mod download -json "$1@$2" 2>&1) || true
  err=$(field Error <<<"$json")
  if [ -n "$err" ] || ! grep -q '"Dir"' <<<"$json"; then
    echo "build-go-tools: the Go module proxy did not provide $1@$2 (GOPROXY=$(go env GOPROXY)):" >&2
    echo "  ${err:-$json}" >&2
    return 1
  fi
  echo "$(field Dir <<<"$json") $(field Sum <<<"$json")"
}

# copy_source DIR NAME -> prints a writable copy of DIR (the module cache is read-only).
copy_source() {
  cp -r "$1" "$WORK/$2"
  chmod -R u+w "$WORK/$2"
  echo "$WORK/$2"
}

# go_build SRC PKG BINARY [go build flags...]: build to a temp name, then rename,
# so a reader never sees a half-written binary.
go_build() {
  local src=$1 pkg=$2 out=$3
  shift 3
  if ! (cd "$src" && go build "${GO_BUILD_FLAGS[@]}" "$@" -o "$BIN/.$out.tmp" "$pkg"); then
    rm -f "$BIN/.$out.tmp"
    echo "build-go-tools: 'go build $pkg' failed for $out (see the compiler output above)" >&2
    return 1
  fi
  mv -f "$BIN/.$out.tmp" "$BIN/$out"
}

build_mongo_tools() {
  local dir sum src
  read -r dir sum < <(GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}$MONGO_TOOLS_MOD" download "$MONGO_TOOLS_MOD" "$MONGO_TOOLS_VERSION") || return 1
  [ -n "$dir" ] || return 1
  if [ "$sum" != "$MONGO_TOOLS_SUM" ]; then
    echo "build-go-tools: checksum mismatch for $MONGO_TOOLS_MOD@$MONGO_TOOLS_VERSION: got $sum, pinned $MONGO_TOOLS_SUM" >&2
    return 1
  fi
  src=$(copy_source "$dir" mongo-tools)
  # The module zip keeps vendor/modules.txt but no vendored code: -mod=mod makes
  # go use go.mod/go.sum and the module cache instead.
  go_build "$src" ./mongodump/main mongodump -ldflags "$MONGO_TOOLS_LDFLAGS" &&
    go_build "$src" ./mongorestore/main mongorestore -ldflags "$MONGO_TOOLS_LDFLAGS"
}

build_ferretdb() {
  local dir sum src
  read -r dir sum < <(download "$FERRETDB_MOD" "$FERRETDB_VERSION") || return 1
  [ -n "$dir" ] || return 1
  src=$(copy_source "$dir" ferretdb)
  # FerretDB panics at start-up unless build/version/version.txt (generated by
  # its release tooling, absent from the module zip) holds a "vX.Y.Z" version.
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  echo "source, $FERRETDB_PATCH" >"$src/build/version/package.txt"
  # mongorestore always puts "ns" in the index specs it sends to createIndexes;
  # MongoDB ignores it, FerretDB v1 fails with 'Index option "ns" is unknown', so
  # no index could be restored. Ignore it the way FerretDB ignores "background".
  local handler="$src/internal/handler/msg_createindexes.go"
  sed -i 's/^\t\tcase "background":$/\t\tcase "background", "ns":/' "$handler"
  if ! grep -q 'case "background", "ns":' "$handler"; then
    echo "build-go-tools: could not apply '$FERRETDB_PATCH' to $handler (did its source change?)" >&2
    return 1
  fi
  go_build "$src" ./cmd/ferretdb ferretdb
}

failed=()
for g in "${todo[@]}"; do
  up_to_date "$g" && continue # built by another run while we waited for the lock
  start=$SECONDS
  echo "build-go-tools: building $g ($(recipe "$g" | cut -d' ' -f1)) ..." >&2
  rm -f "$STAMPS/$g"
  if "build_${g//-/_}"; then
    recipe "$g" >"$STAMPS/$g"
    echo "build-go-tools: built $(binaries "$g") in $((SECONDS - start)) s into $BIN" >&2
  else
    failed+=("$g")
  fi
done

[ ${#failed[@]} -eq 0 ] || die "FAILED to build: ${failed[*]} (errors above)"
