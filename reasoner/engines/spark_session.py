"""The Spark session of `--engine spark`: where it runs, started quietly, or a clear error.

`session()` returns the one SparkSession of the process, made on first use:

- `SPARK_REMOTE` set (e.g. `sc://host:15002`): Spark Connect to that server (needs
  `pyspark[connect]`; tested against a Connect server on a standalone cluster on one
  machine, tests/test_spark_cluster.py); with a master given as well (below), an
  error (E032), not a choice made silently; set but empty, as if unset;
- else the master given by `--spark-master` (`configure(master=...)`), else
  `$REASONER_SPARK_MASTER`, else `local[*]`: a driver JVM started by pyspark, which
  joins a cluster for `spark://`, `yarn` or `k8s://` masters.

Spark's log noise is kept off the user's terminal: log4j is set to ERROR before the JVM
starts (a properties file passed as a driver option), and the JVM's own standard error
(its banner, `WARNING: Using incubator modules`, warnings written before log4j is read)
goes to a log file in the temp folder, named in any error. pyspark's Python loggers that
print JSON on a failed query are silenced: a failure is raised as an exception and
reported once by the command.

Missing pyspark is E030, missing or unusable Java E031, a session that cannot start
E032: `error[E03x]` lines, exit 2, never a traceback. Importing this module imports no
pyspark (the command line imports it for `--spark-master`).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import NO_SPAN

NO_PYSPARK = "E030"
NO_JAVA = "E031"
NO_SESSION = "E032"
SPARK_FAILED = "E033"
"""A statement that Spark could not run (the cluster, the files it reads): the first
line of Spark's message."""

DEFAULT_MASTER = "local[*]"
_master: str | None = None
_session: Any = None
_lock = threading.Lock()
_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
"""


def configure(master: str | None = None) -> None:
    """Where the next session runs (`--spark-master URL`); an existing session is kept."""
    global _master
    if master:
        _master = master


def master() -> str:
    """The master URL a new local-driver session gets."""
    return _master or os.environ.get("REASONER_SPARK_MASTER") or DEFAULT_MASTER


def log_path() -> Path:
    """Where the driver JVM's standard error goes (its banner and warnings)."""
    return Path(tempfile.gettempdir()) / f"reasoner-spark-{os.getuid() if hasattr(os, 'getuid') else 0}.log"


def _fail(code: str, message: str) -> ReasonerError:
    return ReasonerError.at(NO_SPAN, message, code)


def _check_java() -> None:
    home = os.environ.get("JAVA_HOME")
    java = Path(home) / "bin" / "java" if home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise _fail(NO_JAVA, "--engine spark needs Java 17 or later (`java` on PATH or JAVA_HOME): "
                             "install it, e.g. `apt-get install openjdk-17-jre-headless`")


def _quiet_python_loggers() -> None:
    for name in ("py4j", "py4j.clientserver", "SQLQueryContextLogger", "pyspark"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Connect's client warns of the one window without partition (the numbering of
    # patients, docs/spark.md): advice to whoever writes the Spark code, which a local
    # driver logs below ERROR level; pyspark's other warnings stay
    warnings.filterwarnings("ignore", message="WARN WindowExpression: No Partition Defined", module=r"pyspark(\.|$)")


def session(app: str = "reasoner") -> Any:
    """The process's SparkSession, started on first use (see the module docstring).
    Raises ReasonerError E030-E032 when Spark cannot run here."""
    global _session
    with _lock:
        if _session is not None:
            return _session
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise _fail(NO_PYSPARK, "--engine spark needs pyspark: pip install 'guideline-reasoner[spark]'") from None
        _quiet_python_loggers()
        remote = os.environ.get("SPARK_REMOTE")
        if remote is not None and not remote.strip():
            del os.environ["SPARK_REMOTE"]  # set but empty: unset (pyspark would refuse any master)
            remote = None
        # MASTER: Spark's own variable, which pyspark also refuses beside SPARK_REMOTE
        chosen = _master or os.environ.get("REASONER_SPARK_MASTER") or os.environ.get("MASTER")
        if remote and chosen:
            raise _fail(NO_SESSION, f"both a Spark master ({chosen}, from --spark-master, REASONER_SPARK_MASTER or "
                                    f"MASTER) and Spark Connect (SPARK_REMOTE={remote}) are given: unset one")
        builder = SparkSession.builder.appName(app)
        if remote:
            try:  # the Connect client first: without it, its absence is what to say (E030)
                from pyspark.sql.connect.utils import check_dependencies
                check_dependencies()
            except ImportError as exc:  # pyspark's PySparkImportError is one
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise _fail(NO_PYSPARK, "SPARK_REMOTE (Spark Connect) needs pyspark's Connect client: "
                                        f"pip install 'guideline-reasoner[spark-connect]' ({first})") from None
            unreachable = _unreachable(remote)
            if unreachable:  # the Connect client retries a refused connection for ever, without a word
                raise _fail(NO_SESSION, f"Spark Connect server {remote} cannot be reached: {unreachable} "
                                        "(SPARK_REMOTE)")
            builder = builder.remote(remote)
        else:
            _check_java()
            builder = _local_builder(builder)
        try:
            _session = _start(builder, remote is not None)
        except ReasonerError:
            raise
        except Exception as exc:  # the JVM did not start, or the cluster refused
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if remote and isinstance(exc, ImportError):  # pyspark's PySparkImportError is one
                raise _fail(NO_PYSPARK, "SPARK_REMOTE (Spark Connect) needs pyspark's Connect client: "
                                        f"pip install 'guideline-reasoner[spark-connect]' ({first})") from None
            where = "" if remote else f" (the JVM's messages: {log_path()})"  # Connect starts no JVM here
            raise _fail(NO_SESSION, f"Spark did not start ({remote or master()}): {first}{where}") from None
        return _session


def _unreachable(remote: str, timeout: float = 10.0) -> str | None:
    """Why a TCP connection to the `sc://host:port` of SPARK_REMOTE cannot be made (port
    15002 when none is given), or None. Other forms (pyspark's `local`, which starts a
    server here) are pyspark's to judge."""
    import socket
    from urllib.parse import urlsplit
    if not remote.startswith("sc://"):
        return None
    try:
        parts = urlsplit(remote.split(";", 1)[0])
        host, port = parts.hostname, parts.port or 15002
    except ValueError as exc:
        return f"not an sc://host:port address ({exc})"
    if not host:
        return "not an sc://host:port address"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _local_builder(builder: Any) -> Any:
    props = Path(tempfile.gettempdir()) / "reasoner-spark-log4j2.properties"
    if not props.exists() or props.read_text() != _LOG4J:
        props.write_text(_LOG4J)
    options = f"-Dlog4j2.configurationFile=file:{props} -Dlog4j.configurationFile=file:{props}"
    builder = builder.master(master())
    for key, value in {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": options,
        "spark.executor.extraJavaOptions": options,
        # small default for one machine; a cluster's own setting (spark-defaults.conf) wins
        "spark.sql.shuffle.partitions": os.environ.get("REASONER_SPARK_PARTITIONS", "8"),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        # the driver JVM is started here only for local and client-mode masters
        "spark.driver.memory": os.environ.get("REASONER_SPARK_DRIVER_MEMORY") or default_driver_memory(),
    }.items():
        builder = builder.config(key, value)
    return builder


def default_driver_memory() -> str:
    """The local driver JVM's heap (which in local mode is also the executors'): a quarter
    of the memory this process may use (`cohort.memory_share_mb`), 2 to 8 GB. At 1,000,000
    CRS patients on local[2], 2 GB ran out while the rows came back (the JVM spent its
    cores on garbage collection for 20 minutes and was stopped); 6 GB took 23 minutes."""
    from reasoner.engines.cohort import memory_share_mb
    return f"{memory_share_mb(2048, 8192)}m"


def _start(builder: Any, remote: bool) -> Any:
    """getOrCreate with the JVM's standard error sent to `log_path()`: the child process
    inherits file descriptor 2 as it is at launch, so it is pointed at the log file for
    that moment only (a Connect session starts no JVM here)."""
    if remote:
        return builder.getOrCreate()
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(log_path(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(log, 2)
        spark = builder.getOrCreate()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop() -> None:
    """Stop the process's session (tests; the command line lets the process end it)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


def spark_error(exc: BaseException) -> ReasonerError | None:
    """A Spark failure as an E033 diagnostic (None: not Spark's)."""
    module = type(exc).__module__ or ""
    if not (module.startswith("pyspark") or module.startswith("py4j")):
        return None
    text = str(exc).strip().splitlines()
    return _fail(SPARK_FAILED, f"Spark failed: {text[0] if text else type(exc).__name__}")
