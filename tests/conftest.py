import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from embed_fixtures import (converted, converted_int8, source_dir, st_model,  # noqa: E402,F401
                            st_vectors, texts)
