#!/bin/sh
# Compile and run every probe under `setarch -R` (no ASLR).
# Usage: tools/probes/run_all.sh [probe-name-substring]
# Outputs go to $OUT (default /tmp/vmsim_probes/<name>.out) and stdout.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/vmsim_probes}
mkdir -p "$OUT"
for src in "$HERE"/p*.c; do
    name=$(basename "$src" .c)
    case "$name" in *"${1:-}"*) ;; *) continue ;; esac
    gcc -O0 -g -Wall -o "$OUT/$name" "$src" || { echo "compile failed: $name"; continue; }
    echo "===== $name (setarch -R $OUT/$name)"
    setarch -R "$OUT/$name" > "$OUT/$name.out" 2>&1
    echo "exit status $?" >> "$OUT/$name.out"
    cat "$OUT/$name.out"
done
