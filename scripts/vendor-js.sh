#!/usr/bin/env bash
# Vendors the dashboard's chart libraries from the npm registry at pinned versions,
# with their licence files, into src/gridrun/ui/static/vendor/. The dashboard never
# loads anything from a CDN: it must work on a machine with no internet.
# Re-run after changing a version below; commit the result. Needs npm (for `npm pack`).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=src/gridrun/ui/static/vendor
# name  version  files to keep (relative to the package root)
packages=(
  "uplot 1.6.32 dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
  "plotly.js-dist-min 3.7.0 plotly.min.js LICENSE"
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${packages[@]}"; do
  read -r name version files <<<"$entry"
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  mkdir -p "$work/$name"
  tar -xzf "$work/$tarball" -C "$work/$name"
  rm -rf "${dest:?}/$name"
  mkdir -p "$dest/$name"
  for f in $files; do
    cp "$work/$name/package/$f" "$dest/$name/$(basename "$f")"
  done
  echo "$name@$version $(sha512sum "$work/$tarball" | cut -c1-16)" >"$dest/$name/VERSION"
  echo "vendored $name@$version into $dest/$name"
done
