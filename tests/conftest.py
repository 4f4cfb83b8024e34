import os
import shutil
import sys
import tempfile

import pytest

import sutra_fast as sf

sys.path.insert(0, os.path.dirname(__file__))

from embed_fixtures import (converted, converted_int8, source_dir, st_model,  # noqa: E402,F401
                            st_vectors, texts)


SUPPORTED_ISAS = sf.cpu_info()["supported_isas"]

# A model cache of the test session's own: tests never read or write the
# user's (~/.cache/sutra_fast), e.g. its pre-packed ORT copies (ort_session.py).
_CACHE = tempfile.mkdtemp(prefix="sutra-test-cache-")
os.environ["SUTRA_CACHE_DIR"] = _CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Run the test once at every instruction-set level this CPU supports."""
    before = sf.cpu_info()["isa"]
    sf.set_cpu_isa(request.param)
    yield request.param
    sf.set_cpu_isa(before)


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    before = sf.get_num_threads()
    sf.set_num_threads(request.param)
    yield request.param
    sf.set_num_threads(before)
