"""Shared test set-up: the rule-set cache (reasoner/analysis/rulecache.py) goes to a folder of
this test session, not the user's ~/.cache, for the commands tests run in-process and in
subprocesses alike (tests/test_startup.py sets its own folders where it tests the cache)."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _rule_cache_in_a_session_folder(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("rule-cache")
    os.chmod(folder, 0o700)
    old = os.environ.get("REASONER_CACHE_DIR")
    os.environ["REASONER_CACHE_DIR"] = str(folder)
    yield
    if old is None:
        os.environ.pop("REASONER_CACHE_DIR", None)
    else:
        os.environ["REASONER_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def spark():
    """One Spark session (`local[2]`) for every test that runs the Spark engine, stopped at
    the end. Skipped only where Java is absent (CI installs it: .ci/run)."""
    import shutil

    from reasoner.engines import spark_session
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java on this machine: the Spark engine needs Java 17 (.ci/run installs it)")
    spark_session.configure("local[2]")
    session = spark_session.session("reasoner-tests")
    yield session
    spark_session.stop()
