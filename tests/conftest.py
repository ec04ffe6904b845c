"""Shared test setup: the tensor cache lives in a temporary folder, not in ~/.cache; one
small trained checkpoint for the tests that read or damage one."""
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tensor_cache_folder):
    """The checkpoint of one epoch of resnet8 on the digits (tests copy it before changing it)."""
    from odenets.app.commands import cli

    out = tmp_path_factory.mktemp("trained")
    assert cli.main(["train", "--model", "resnet8", "--epochs", "1", "--batch-size", "256", "--out", str(out),
                     "--quiet"]) == 0
    return out / "checkpoint.pt"
