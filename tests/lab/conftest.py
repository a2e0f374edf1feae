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


TINY_SUITE = dict(workloads=("linreg",), optimizers=("sgd", "schedulefree-adamw"), trials=2,
                  seeds=2)


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory):
    """A finished suite of one workload at the test size: sgd tuned with 2 trials, and
    Schedule-Free AdamW untuned, 2 seeds each."""
    from descend.lab.suite import get_suite, run_suite

    out = tmp_path_factory.mktemp("suite")
    result = run_suite(get_suite("test", **TINY_SUITE), out=out, jobs=1, progress=False)
    return out, result
