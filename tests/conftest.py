"""Shared test setup: the tensor cache lives in a temporary folder, not in ~/.cache."""
import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def tensor_cache_folder(tmp_path_factory):
    before = os.environ.get("ODENETS_CACHE")
    os.environ["ODENETS_CACHE"] = str(tmp_path_factory.mktemp("tensor-cache"))
    yield os.environ["ODENETS_CACHE"]
    if before is None:
        os.environ.pop("ODENETS_CACHE")
    else:
        os.environ["ODENETS_CACHE"] = before
