import pytest

from descend.lab.compare import compare

SMALL = dict(optimizers=["sgd", "adam"], seeds=[0, 1], epochs=3, evals=4, progress=False,
             jobs=1)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A finished tiny grid, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("small")
    result = compare("digits-logreg", out=out, **SMALL)
    return out, result.comparison
