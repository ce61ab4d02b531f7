#!/bin/sh
# Fail when clang-format would change any tracked C file (STYLE.md). Needs a
# git checkout: the tracked files are the ones checked, and outside a
# checkout there would be nothing to check, which must not pass.
set -eu
cd "$(dirname "$0")/.."
if ! files=$(git ls-files '*.c' '*.h'); then
    echo "check-format: not a git checkout (or git is missing): nothing to check" >&2
    exit 1
fi
if [ -z "$files" ]; then
    echo "check-format: git lists no C files" >&2
    exit 1
fi
bad=""
for f in $files; do
    [ -f "$f" ] || continue
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "clang-format would change:$bad (run: make format)" >&2
    exit 1
fi
