"""Output files written whole or not at all.

Every file a command writes (`recommend -o`, `--rule-counts`, `check --witness-dir`)
is written under a temporary name in the target's own folder and renamed into place
(`os.replace`, atomic on one file system) only when the run succeeds. So an existing
file is never lost or half-written by a run that fails or is interrupted, and two runs
writing the same file at once never interleave: each writes its own temporary file and
the last rename wins, each result whole. A target that is not a regular file (`/dev/null`,
a FIFO) or is a symbolic link (`/dev/stdout`, a link into a shared folder) is written in
place at the end, from a temporary file in the system's folder: a rename would replace the
link itself and leave its target unwritten. A target that is one of the run's inputs is
refused (E021): the input would be lost.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from reasoner.language.errors import OUTPUT, ReasonerError
from reasoner.language.syntax import Span


def _error(path: str, option: str, why: str) -> ReasonerError:
    return ReasonerError.at(Span(path, 0, 0), f"cannot write the {option} file: {why}", OUTPUT)


def _new_file_mode() -> int:
    """The permissions `open` gives a new file (0o666 less the umask), read without
    setting the umask where Linux shows it (setting it is process-wide, threads too)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


class OutputFile:
    """`path` to be written: write `temp` (or more files made by `new_temp`), then
    `commit()`; leaving the `with` block without committing removes every temporary file.

    Made before the run's work starts: a missing or unwritable folder is reported then
    (E021), located at the path, before anything is printed or evaluated."""

    def __init__(self, path: str, option: str, inputs: Iterable[str] = ()):
        self.path, self.option = path, option
        self._temps: list[str] = []
        target = Path(path)
        for source in inputs:
            why = _overwritten_input(path, source) if source != "-" else None
            if why:
                raise _error(path, option, why)
        self.special = target.is_symlink() or (target.exists() and not target.is_file() and not target.is_dir())
        if self.special:  # a link, a device or a FIFO: never replaced, written in place at the end
            if target.exists() and not os.access(path, os.W_OK):
                raise _error(path, option, "permission denied")
            import tempfile  # only when a file is written: `recommend` to stdout stays lighter
            self.folder = tempfile.gettempdir()
        else:
            folder = target.parent
            if not folder.is_dir():
                raise _error(path, option, f"no such folder {str(folder)!r}" if not folder.exists()
                             else f"{str(folder)!r} is not a folder")
            self.folder = str(folder)
        self.temp = self.new_temp()  # making it is the test that the folder can be written

    def new_temp(self, suffix: str = ".part") -> str:
        """A new, empty temporary file beside the target, removed unless committed."""
        import tempfile  # here, not at the top: tempfile pulls in random, bz2, lzma (~1.5 ms)
        try:
            handle, name = tempfile.mkstemp(dir=self.folder, prefix=f".{Path(self.path).name}.", suffix=suffix)
        except OSError as exc:
            raise _error(self.path, self.option, (exc.strerror or str(exc)).lower()) from None
        os.close(handle)
        self._temps.append(name)
        return name

    def commit(self) -> None:
        """Put `temp` in place of the target: atomically, with the target's permissions
        (or, for a new file, those `open` would give it)."""
        try:
            if self.special:
                import shutil
                with open(self.temp, "rb") as source, open(self.path, "wb") as sink:
                    shutil.copyfileobj(source, sink)
            else:
                try:
                    mode = stat.S_IMODE(os.stat(self.path).st_mode)
                except OSError:
                    mode = _new_file_mode()
                os.chmod(self.temp, mode)
                os.replace(self.temp, self.path)
                self._temps.remove(self.temp)
        except OSError as exc:
            raise _error(self.path, self.option, (exc.strerror or str(exc)).lower()) from None
        finally:
            self.discard()

    def discard(self) -> None:
        for name in self._temps:
            try:
                os.unlink(name)
            except OSError:
                pass
        self._temps.clear()

    def __enter__(self) -> "OutputFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


def _overwritten_input(a: str, b: str) -> str | None:
    """Why writing `a` would overwrite the input `b` (the file itself, or a file in the input
    folder, which the run reads), or None."""
    try:
        if os.path.samefile(a, b):
            return f"it is also an input of this run ({b}), which it would overwrite"
        if os.path.isdir(b) and os.path.isfile(a) and Path(a).resolve().is_relative_to(Path(b).resolve()):
            return f"it is a file in the input folder {b}, which this run reads: it would be overwritten"
    except OSError:  # either does not exist (yet): nothing to overwrite
        pass
    return None


def write_text(path: str | Path, text: str, option: str = "output", inputs: Iterable[str] = ()) -> None:
    """`text` into `path`, whole or not at all (never over one of `inputs`)."""
    with OutputFile(str(path), option, inputs) as out:
        with open(out.temp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        out.commit()


def check_folder(path: str, option: str) -> None:
    """A folder that exists or can be made (its nearest existing ancestor is a writable
    folder), or ReasonerError (E021): checked before the run's work starts."""
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = ("it is a file, not a folder" if existing == Path(os.path.abspath(path))
               else f"{str(existing)!r} is not a folder")
        raise ReasonerError.at(Span(path, 0, 0), f"cannot write the {option} folder: {why}", OUTPUT)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReasonerError.at(Span(path, 0, 0), f"cannot write the {option} folder: permission denied", OUTPUT)
