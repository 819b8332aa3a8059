"""Setup shared by tests/engine and tests/app: Qt without a display (for the app tests and the child processes
they start) and an engine cache that never touches the user's. Set before anything imports Qt or lmcore; nothing
here imports Qt, so the engine tests run as `lmcore train` does."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The tests train tiny models, for which one thread per process is fastest, and some launch several processes
# (torchrun): two OpenMP threads per process would spin-wait against each other on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "LMCORE_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="lmcore-test-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["LMCORE_CACHE_DIR"] = _cache

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """20,000 characters of the sample corpus: quick to tokenize, encode and evaluate."""
    from engine_helpers import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus"), 20_000)
