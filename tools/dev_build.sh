#!/usr/bin/env bash
# Developer build: compile the extension modules and copy them into
# python/sutra_fast/ (in place), then use the source tree with
#     PYTHONPATH=python pytest
# Several checkouts (git worktrees) can each build this way against one shared
# virtual environment. Wheels, CI and users use `pip install .` instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python}
build="$root/build/inplace"
version=$("$py" -c "import re,sys; print(re.search(r'\"(.+)\"', open(sys.argv[1]).read()).group(1))" \
          "$root/python/sutra_fast/_version.py")
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DSKBUILD_PROJECT_VERSION="$version" \
      -DPython_EXECUTABLE="$(command -v "$py")" \
      -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" \
      -DSUTRA_SANITIZE="${SUTRA_SANITIZE:-OFF}" >/dev/null
cmake --build "$build"
cmake --install "$build" --prefix "$build/stage" >/dev/null
cp "$build"/stage/sutra_fast/*.so "$root/python/sutra_fast/"
echo "built into $root/python/sutra_fast (use PYTHONPATH=$root/python)"
