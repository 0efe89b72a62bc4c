"""`--engine spark` on a cluster, not only in local mode: a standalone master and a worker
(each its own JVM; the executors are processes of the worker, apart from the driver) and
a Spark Connect server running its applications on that cluster, all started here from
pyspark's own jars. `reasoner` runs as the driver (`--spark-master spark://...`) or as a
Connect client (`SPARK_REMOTE=sc://...`, no JVM of its own), and must print the same bytes
as `--engine duckdb`: the cohort file is read by the executors, recursion runs as the
driver's semi-naive loop over the cluster.

What this does not cover: several machines, a shared file system, lost executors, YARN,
Kubernetes. The Connect server is held to one of the worker's two cores
(`spark.cores.max`), which leaves the other to the `reasoner` driver: a standalone master
gives an application every free core, and an application that finds none waits,
silently, for ever (so a run here has a timeout, far above its ~30 s).

The CRS rule set over a generated cohort is marked `slow` (about a minute and a half per
run on the 2-core machine); the default run keeps a recursive program (seconds).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
REASONER = [sys.executable, "-m", "reasoner"]

PATHS = """.decl edge(x: id, y: id) input "an edge"
.decl path(x: id, y: id) output "y is reachable from x"
path(X, Y) :- edge(X, Y).
path(X, Z) :- path(X, Y), edge(Y, Z).
"""
EDGES = "predicate,arg1,arg2\nedge,a,b\nedge,b,c\nedge,c,a\nedge,c,d\nedge,x,y\nedge,y,y\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Cluster:
    """The JVMs started for the module, each with its log. They stay in the test run's
    process group, so whatever stops the run's group stops them too; stopped here with
    SIGTERM, on which a worker stops its executors."""

    def __init__(self, folder: Path):
        import pyspark
        self.home = Path(pyspark.__file__).parent
        self.folder = folder
        self.env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOCAL_IP": "127.0.0.1",
                    "SPARK_WORKER_DIR": str(folder / "work")}
        self.env.pop("SPARK_REMOTE", None)
        self.processes: list[tuple[subprocess.Popen, Path]] = []
        self.master_port = _free_port()
        self.master = f"spark://127.0.0.1:{self.master_port}"
        self.connect_port = _free_port()

    def start(self, name: str, command: list[str]) -> Path:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append((process, log))
        return log

    def wait(self, what: str, ready, log: Path, seconds: float = 300) -> None:
        """Until `ready()`; a JVM that ends first, or a start that takes five minutes,
        fails the test with the end of its log (a start, not a correctness limit)."""
        deadline = time.monotonic() + seconds
        while not ready():
            if any(p.poll() is not None for p, _ in self.processes) or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start; {log}:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)

    def up(self) -> None:
        spark_class = str(self.home / "bin" / "spark-class")
        log = self.start("master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                    "--port", str(self.master_port), "--webui-port", str(_free_port())])
        self.wait("the standalone master", lambda: _listening(self.master_port), log)
        self.start("worker", [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                              "--webui-port", str(_free_port()), "--cores", "2", "--memory", "3g", self.master])
        self.wait("the worker", lambda: "Registering worker" in log.read_text(errors="replace"), log)
        log = self.start("connect", [
            str(self.home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "reasoner-test-connect", "--master", self.master,
            "--conf", f"spark.connect.grpc.binding.port={self.connect_port}", "--conf", "spark.cores.max=1",
            "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false", "spark-internal"])
        self.wait("the Spark Connect server", lambda: _listening(self.connect_port), log)

    def down(self) -> None:
        for process, _ in reversed(self.processes):  # spark-class ends in exec: the process is the JVM
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Cluster]:
    pytest.importorskip("pyspark")
    pytest.importorskip("grpc")  # the Connect client: pyspark[connect], in the test extra
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: .ci/run installs openjdk-17-jre-headless")
    running = _Cluster(tmp_path_factory.mktemp("spark-cluster"))
    try:
        running.up()
        yield running
    finally:
        running.down()


def _run(args: list[str], cwd: Path, env: dict | None = None) -> bytes:
    # a timeout against an application that waits for cores for ever; 20x a normal run
    done = subprocess.run(REASONER + args, cwd=cwd, capture_output=True, env={**os.environ, **(env or {})},
                          timeout=1200)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout


def _engines(cluster: _Cluster) -> dict[str, tuple[list[str], dict]]:
    """How each run reaches Spark: the arguments and environment it adds."""
    return {
        # SPARK_REMOTE set but empty counts as unset (pyspark alone would refuse the master)
        "standalone": (["--engine", "spark", "--spark-master", cluster.master],
                       {"SPARK_REMOTE": "", "SPARK_LOCAL_IP": "127.0.0.1"}),
        "connect": (["--engine", "spark"], {"SPARK_REMOTE": f"sc://127.0.0.1:{cluster.connect_port}"}),
    }


@pytest.mark.parametrize(("reach", "form"), [("standalone", "text"), ("connect", "json")])
def test_recursion_on_a_cluster_gives_duckdbs_answers(cluster: _Cluster, reach: str, form: str,
                                                      tmp_path: Path) -> None:
    """Left recursion over a cycle, a chain off it and a self loop, the fact file (named
    relative to the client's folder) read by the cluster's executors: the same answers as
    DuckDB's and pyDatalog's, byte for byte. A run costs ~30 s (a driver and an executor
    JVM started), so each way in takes one of the two formats."""
    (tmp_path / "paths.dl").write_text(PATHS)
    (tmp_path / "edges.csv").write_text(EDGES)
    args, env = _engines(cluster)[reach]
    goal = ["query", "--rules", "paths.dl", "--format", form, "path(X, Y)", "edges.csv"]
    expected = _run(goal + ["--engine", "duckdb"], tmp_path)
    assert expected == _run(goal + ["--engine", "pydatalog"], tmp_path)
    assert _run(goal + args, tmp_path, env) == expected


def test_a_master_and_spark_connect_together_are_refused(tmp_path: Path) -> None:
    """`--spark-master` (or REASONER_SPARK_MASTER, or Spark's MASTER) with SPARK_REMOTE: which one was meant
    is not guessed; exit 2 with E032, before any JVM or connection."""
    pytest.importorskip("pyspark")
    (tmp_path / "paths.dl").write_text(PATHS)
    (tmp_path / "edges.csv").write_text(EDGES)
    goal = ["query", "--rules", "paths.dl", "--engine", "spark", "path(X, Y)", "edges.csv"]
    for args, env in ((["--spark-master", "local[1]"], {}), ([], {"REASONER_SPARK_MASTER": "local[1]"}),
                      ([], {"MASTER": "local[1]"})):
        done = subprocess.run(REASONER + goal + args, cwd=tmp_path, capture_output=True,
                              env={**os.environ, "SPARK_REMOTE": "sc://127.0.0.1:1", **env})
        assert done.returncode == 2 and done.stdout == b""
        assert done.stderr.decode().startswith("error[E032]: both a Spark master (local[1]"), done.stderr


def test_a_spark_connect_server_that_cannot_be_reached_is_said(tmp_path: Path) -> None:
    """Nothing listens at SPARK_REMOTE: the Connect client retried for ever (400 s and on,
    found by a hostile-input review); now E032, exit 2, at once."""
    pytest.importorskip("pyspark")
    pytest.importorskip("grpc")
    (tmp_path / "paths.dl").write_text(PATHS)
    (tmp_path / "edges.csv").write_text(EDGES)
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        done = subprocess.run(REASONER + ["query", "--rules", "paths.dl", "--engine", "spark", "path(X, Y)",
                                          "edges.csv"], cwd=tmp_path, capture_output=True, timeout=600,
                              env={**os.environ, "SPARK_REMOTE": f"sc://127.0.0.1:{port}"})
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith(f"error[E032]: Spark Connect server sc://127.0.0.1:{port} cannot be "
                                           "reached: connection refused"), done.stderr


def test_spark_connect_without_its_client_says_what_to_install(tmp_path: Path) -> None:
    """pyspark without its Connect client (grpcio and the rest of pyspark[connect]):
    E030 with the extra to install, exit 2, no traceback."""
    pytest.importorskip("pyspark")
    (tmp_path / "paths.dl").write_text(PATHS)
    (tmp_path / "edges.csv").write_text(EDGES)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "grpc.py").write_text("raise ImportError('No module named grpc')\n")  # as if not installed
    done = subprocess.run(REASONER + ["query", "--rules", "paths.dl", "--engine", "spark", "path(X, Y)", "edges.csv"],
                          cwd=tmp_path, capture_output=True,
                          env={**os.environ, "SPARK_REMOTE": "sc://127.0.0.1:1", "PYTHONPATH": str(hidden)})
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert done.stderr.decode().startswith("error[E030]: SPARK_REMOTE (Spark Connect) needs pyspark's Connect client: "
                                           "pip install 'guideline-reasoner[spark-connect]'"), done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("reach", ["standalone", "connect"])
def test_the_crs_report_on_a_cluster_is_duckdbs(cluster: _Cluster, reach: str, tmp_path: Path) -> None:
    """The CRS rule set over 200 generated patients read by the executors:
    `recommend --format csv --rule-counts` gives DuckDB's bytes, rows and counts."""
    from bench_duckdb import write_cohort
    write_cohort(200, tmp_path / "cohort.csv")
    args, env = _engines(cluster)[reach]
    outputs = {}
    for name, engine, extra in (("duckdb", ["--engine", "duckdb"], {}), (reach, args, env)):
        _run(["recommend", *engine, "--format", "csv", "-o", f"{name}.csv", "--rule-counts", f"{name}-counts.csv",
              "cohort.csv"], tmp_path, extra)
        outputs[name] = ((tmp_path / f"{name}.csv").read_bytes(), (tmp_path / f"{name}-counts.csv").read_bytes())
    assert outputs[reach] == outputs["duckdb"]
    assert outputs["duckdb"][0].count(b"\n") > 200  # rows for every patient, not an empty report


def test_the_paths_spark_is_given(tmp_path: Path, monkeypatch) -> None:
    """A local file goes to Spark as an absolute `file:` path with its glob characters
    escaped (a relative path would be resolved in the Spark server's own folder); URIs
    Spark reads go as they are."""
    from reasoner.io.spark_inputs import spark_path
    monkeypatch.chdir(tmp_path)
    here = str(tmp_path.resolve())
    assert spark_path("c.csv") == f"file:{here}/c.csv"
    assert spark_path(Path("d [1]/c*.csv")) == f"file:{here}/d \\[1\\]/c\\*.csv"
    assert spark_path("file:///data/c.csv") == "file:/data/c.csv"
    for uri in ("file:/data/c.csv", "hdfs://head/c.csv", "s3a://bucket/c.parquet"):
        assert spark_path(uri) == uri
