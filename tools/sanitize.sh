#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the tokenizer, kernel, loader, sampler and RWKV tests under it.
#
#     tools/sanitize.sh [extra pytest args]      e.g.  tools/sanitize.sh -x -k wordpiece
#     SUTRA_SANITIZE_TESTS="tests/test_fuzz_kernels.py" tools/sanitize.sh
#
# The sanitized build happens in a temporary copy of the source tree (its own
# build dir), so python/sutra_fast/ of this checkout keeps its normal .so files.
# Exit status: non-zero on any test failure or any sanitizer report.
#
# Why LD_PRELOAD: CPython itself is not built with ASan, so the ASan runtime must
# be the first library loaded (libstdc++ too, so that ASan's operator new/delete
# interposition sees the same C++ runtime as our extension).
# Why detect_leaks=0: CPython keeps interned objects, module state and arenas
# alive until exit on purpose, so LeakSanitizer would report thousands of
# "leaks" that are not ours; memory errors (overflow, use-after-free, double
# free) and UB are still fatal.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python}
keep=${SUTRA_SANITIZE_KEEP:-}          # set to a dir to reuse/keep the sanitized copy
work=${keep:-$(mktemp -d /tmp/sutra_sanitize.XXXXXX)}
[ -z "$keep" ] && trap 'rm -rf "$work"' EXIT

echo "== copying the tree into $work"
mkdir -p "$work"
# tracked + untracked-but-not-ignored files; never the build dir or built .so files
(cd "$root" && git ls-files -co --exclude-standard -z) | \
    (cd "$root" && xargs -0 cp -p --parents -t "$work" 2>/dev/null || true)
rm -f "$work"/python/sutra_fast/*.so

echo "== sanitized build (ASan + UBSan)"
SUTRA_SANITIZE=ON PYTHON="$py" "$work/tools/dev_build.sh" >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log"; echo "sanitized build failed"; exit 1; }

libasan=$(${CXX:-c++} -print-file-name=libasan.so)
libstdcxx=$(${CXX:-c++} -print-file-name=libstdc++.so.6)
export LD_PRELOAD="$libasan:$libstdcxx"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export PYTHONPATH="$work/python"
export SUTRA_NUM_THREADS=2

tests=(tests/test_wordpiece.py tests/test_world_tokenizer.py tests/test_kernels.py
       tests/test_kernel_errors.py tests/test_rwkv_loader.py tests/test_rwkv.py
       tests/test_sampler.py tests/test_abuse.py)
shopt -s nullglob
for f in "$work"/tests/test_fuzz_*.py; do
    case "$f" in *test_fuzz_server*) ;; *) tests+=("${f#"$work"/}");; esac
done

# SUTRA_SANITIZE_TESTS="tests/a.py tests/b.py" runs only those files
[ -n "${SUTRA_SANITIZE_TESTS:-}" ] && read -r -a tests <<<"$SUTRA_SANITIZE_TESTS"

echo "== pytest under ASan/UBSan: ${tests[*]}"
status=0
# Reports go to stderr; halt_on_error makes each one abort its process, so a
# report fails the run (or, in a tests/test_abuse.py child, its test). The
# output is kept in $work/pytest.log and searched for reports as well.
set -o pipefail
(cd "$work" && "$py" -m pytest -q -p no:cacheprovider "${tests[@]}" "$@" 2>&1) \
    | tee "$work/pytest.log" || status=$?
if grep -qE "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|Fatal Python error" \
        "$work/pytest.log"; then
    echo "== sanitizer reports:"
    grep -nE -A12 "runtime error:|ERROR: AddressSanitizer|Fatal Python error" "$work/pytest.log" | head -80
    status=1
fi
[ $status -eq 0 ] && echo "== sanitize: no reports, all tests passed" || echo "== sanitize: FAILED"
exit $status
