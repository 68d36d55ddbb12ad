"""Test configuration: Hypothesis profiles.

``GFL_HYPOTHESIS_PROFILE`` chooses the profile: ``dev`` (default; quick,
random) or ``ci`` (derandomized, at least 200 examples per property; what
``.ci/run`` uses).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,  # nothing replayed from earlier runs: CI is fixed by the seed alone
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("GFL_HYPOTHESIS_PROFILE", "dev"))

@pytest.fixture
def golden():
    """Load a golden file by stem, ``golden("integral")``: mmdetection's outputs, installed
    with the package (``reference/testing/golden/``, see its README)."""
    from reference.testing.goldens import load

    return load


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: the tests use tiny tensors, where
    torch's thread pool adds only synchronisation (milliseconds per op when other
    processes share the two cores). Restored at the end."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
