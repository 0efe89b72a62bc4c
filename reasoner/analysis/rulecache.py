"""A cache of parsed and checked rule sets, so that a one-patient command does not parse
and check every rule file again (about two thirds of its time before the cache).

An entry is the pickled `RuleSet` of one rule set as loaded from one working directory
(spans name files relative to it), with what it was built from:
- the sha256 of the bytes of every rule file read, `.include`d ones too, with the path
  each was read by and where that path led (symbolic links): all are read and hashed
  again before an entry is used, so an edited, moved or deleted file means a rebuild;
- the sha256 of the package's code that parses and checks rule sets and of its grammar
  (`CODE`: stronger than the package's version, which reading costs 40 ms; a new or an
  edited reasoner never reads an entry another one wrote), the installed lark (its path,
  size and time), the Python version and the pickle protocol, the working directory
  and the rules path as given.

Settings (`--set`) are applied after loading, as without the cache, so they are not part
of the key. A cache entry that cannot be read, is truncated or corrupt, or does not match
is ignored and rebuilt; a cache that cannot be written is skipped. Nothing goes wrong
without a cache: `REASONER_NO_CACHE=1` turns it off.

Where: `$REASONER_CACHE_DIR`, else `$XDG_CACHE_HOME/reasoner`, else `~/.cache/reasoner`.
The directory is made private (0700); a directory that others may write to, or an entry
this user does not own, is never read (an entry is a pickle: reading one runs what it
says, so only this user's own output is trusted). Only rule sets that load without
errors are cached; the checker's lenient loads are not. At most `MAX_ENTRIES` entries
are kept, the least recently written removed first.
"""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from reasoner.analysis.program import RuleSet, resolve_rules_path, load_rules, sha256_hex

FORMAT = 1
MAX_ENTRIES = 64
_PACKAGE = Path(__file__).resolve().parent.parent  # reasoner/
_code_digest: str | None = None


def enabled() -> bool:
    return os.environ.get("REASONER_NO_CACHE", "").strip() in ("", "0")


def cache_dir() -> Path:
    explicit = os.environ.get("REASONER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and os.path.isabs(base) else Path.home() / ".cache") / "reasoner"


CODE = ("__init__.py", "language/__init__.py", "language/errors.py", "language/grammar.lark", "language/parse.py",
        "language/record.py", "language/span.py", "language/syntax.py", "language/values.py", "analysis/__init__.py",
        "analysis/program.py", "analysis/order.py", "analysis/rulecheck.py", "analysis/settings.py", "analysis/strata.py",
        "analysis/rulecache.py")
"""The package's files that parse and check a rule set, and define what a RuleSet holds:
every module `load_rules` imports (tests/test_startup.py keeps this list complete)."""


def code_digest() -> str:
    """The sha256 of the code that makes and reads a RuleSet (CODE)."""
    global _code_digest
    if _code_digest is None:
        _code_digest = sha256_hex(b"".join(name.encode() + b"\0" + sha256_hex((_PACKAGE / name).read_bytes()).encode()
                                           for name in CODE))
    return _code_digest


def _lark() -> tuple:
    """Which lark parses the rule files (it is part of what makes a RuleSet): where its
    package is and when it was installed, found without importing it (an upgrade rewrites it)."""
    import importlib.util
    spec = importlib.util.find_spec("lark")
    if spec is None or not spec.origin:
        return (None,)
    st = os.stat(spec.origin)
    return (spec.origin, st.st_size, st.st_mtime_ns)


def _key(path: str | Path | None, main: Path) -> tuple:
    return (FORMAT, code_digest(), _lark(), sys.version, sys.implementation.cache_tag, pickle.HIGHEST_PROTOCOL,
            os.getcwd(), None if path is None else str(path), str(main), str(main.resolve()))


def load(path: str | Path | None = None) -> RuleSet:
    """`load_rules(path)`, from the cache when every rule file is as it was."""
    if not enabled():
        return load_rules(path)
    main = resolve_rules_path(path)  # a missing rule set is an error now, as without the cache
    try:
        key = _key(path, main)
        folder = cache_dir()
        entry = folder / f"rules-{sha256_hex(repr(key).encode())[:40]}.pickle"
    except (OSError, RuntimeError, ValueError):  # no working directory, no home: no cache
        return load_rules(path)
    cached = _read(entry, key)
    if cached is not None:
        return cached
    files: list[tuple[str, str, str]] = []
    ruleset = load_rules(path, files=files)  # errors are raised, and never cached
    _write(folder, entry, (FORMAT, key, files, ruleset))
    return ruleset


def _private(folder: Path) -> bool:
    """Only this user may write in `folder` (POSIX; elsewhere the user's own profile)."""
    if not hasattr(os, "getuid"):
        return True
    st = os.stat(folder)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _read(entry: Path, key: tuple) -> RuleSet | None:
    try:
        if not _private(entry.parent):
            return None
        with open(entry, "rb") as f:
            if hasattr(os, "getuid") and os.fstat(f.fileno()).st_uid != os.getuid():
                return None
            data = f.read()
        fmt, stored_key, files, ruleset = pickle.loads(data)
        if fmt != FORMAT or stored_key != key or not isinstance(ruleset, RuleSet) or not files:
            return None
        for read_as, resolved, digest in files:
            file = Path(read_as)
            if str(file.resolve()) != resolved or sha256_hex(file.read_bytes()) != digest:
                return None
        return ruleset
    except Exception:  # missing, unreadable, truncated, corrupt, from another version: rebuild
        return None


def _write(folder: Path, entry: Path, content: tuple) -> None:
    temp = None
    try:
        data = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder):
            return
        temp = folder / f".{entry.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, entry)  # whole or not at all: a reader sees the old entry or the new
        temp = None
        _prune(folder)
    except Exception:  # a read-only or full disk, a folder that cannot be made: no cache, same answers
        pass
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES newest entries; drop temporary files a killed writer left (an hour old)."""
    import time
    entries = []
    for child in folder.iterdir():
        try:
            if child.name.startswith("rules-") and child.name.endswith(".pickle"):
                entries.append((child.stat().st_mtime, child))
            elif child.name.startswith(".rules-") and child.name.endswith(".tmp") \
                    and child.stat().st_mtime < time.time() - 3600:
                child.unlink()
        except OSError:
            pass
    for _, child in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        try:
            child.unlink()
        except OSError:
            pass
