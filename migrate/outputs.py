"""The files the tool writes for the operator (``plan --out``, ``csr``'s request and key): new, in a checked directory.

The operator names the file, and it may lie in a directory another account
can write: a shared work directory, a ticket folder, ``/tmp``, the store's
own ``generated_csr/`` (owned by ``_nobody``).  That account could put a
link, a FIFO or a file of its own at the name between two calls, or rename
what root wrote and put its own in its place.  So:

- the directory is opened once, as the operator named it, and checked
  through its descriptor: owned by root or the invoking user, and neither its
  mode (group or other write) nor its ACL (a named user or group with write)
  lets anyone else change its entries; else ``output-directory-unsafe``;
- every file is created relative to that descriptor with
  ``O_CREAT|O_EXCL|O_NOFOLLOW``: never over an entry (``output-exists``),
  never through a link, with its mode set through the descriptor;
- a file written before a later failure is removed the same way, by name
  relative to the held directory.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import attrs

from . import acl, logs, policy
from .errors import MigrateError

# os is imported inside each function, not at module level: this module is first imported by a command,
# which may run inside a test's pyfakefs, and a module-level os would keep the fake one afterwards.

log = logs.get_logger(__name__)


def _unsafe(path: str, problem: str) -> MigrateError:
    return MigrateError(
        f"{path} is not safe to write in: {problem}, so another account could replace what is written there",
        id="output-directory-unsafe",
        path=path,
        hint="write it in a directory only you can write (mkdir -m 0700 DIR, then --out DIR/NAME)",
    )


def directory_problem(fd: int, euid: int) -> str | None:
    """Why the held directory ``fd`` lets an account other than root and ``euid`` change its entries; None if none can."""
    import os
    import stat

    from .scan import read_acl

    st = os.fstat(fd)
    problem = policy.directory_problem(stat.S_IMODE(st.st_mode), st.st_uid, euid)
    if problem is not None:
        return problem
    try:
        found = read_acl(fd)
    except OSError as exc:
        return f"its ACL cannot be read ({os.strerror(exc.errno or errno.EIO)})"
    if found is None:
        return None
    if found.error is not None:
        return f"its ACL cannot be read ({found.error})"
    mask = found.mask if found.mask is not None else acl.READ | acl.WRITE | acl.EXECUTE
    writers = [e.who for e in found.entries if e.named and e.perm & mask & acl.WRITE and e.id not in (0, euid)]
    if writers:
        return f"its ACL lets {', '.join(writers)} write it"
    return None


@attrs.define
class OutputDir:
    """A directory held open for the files one command writes for the operator."""

    fd: int
    path: str
    created: list[str] = attrs.field(factory=list)

    def create(self, name: str, data: bytes, mode: int, *, hint_exists: str) -> None:
        """Create ``name`` here with ``mode`` and ``data``: never over an entry, never through a link."""
        import os

        path = os.path.join(self.path, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(name, flags, mode, dir_fd=self.fd)
        except OSError as exc:
            exists = exc.errno in (errno.EEXIST, errno.ELOOP)
            raise MigrateError(
                f"cannot create {path}: {os.strerror(exc.errno or errno.EIO)}"
                + (": the tool never writes over an entry, nor through a link" if exists else ""),
                id="output-exists" if exists else "output-unwritable",
                path=path,
                hint=hint_exists if exists else "choose a writable --out",
            ) from None
        self.created.append(name)
        try:
            try:
                os.fchmod(fd, mode)  # the umask may have narrowed it; never wider than ``mode``
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.discard()  # nothing half-written is left for the operator
            raise MigrateError(
                f"cannot write {path}: {os.strerror(exc.errno or errno.EIO)}",
                id="output-unwritable",
                path=path,
                hint="choose a writable --out with free space",
            ) from None
        log.info("file_created", path=path, mode=f"{mode:04o}")

    def discard(self) -> None:
        """Remove every file this command created here (a request without its key is of no use), by name in the held directory."""
        import os

        for name in reversed(self.created):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.fd)
        self.created.clear()


def split(path: str) -> tuple[str, str]:
    """The directory and the name of an operator's ``--out`` path; ``output-unwritable`` when it names no file."""
    import os

    directory, name = os.path.split(path)
    if name in ("", ".", ".."):
        raise MigrateError(
            f"{path} names a directory, not a file", id="output-unwritable", path=path, hint="give --out a file name"
        )
    return directory or ".", name


@contextlib.contextmanager
def directory(path: str) -> Iterator[OutputDir]:
    """Hold the directory ``path`` for writing the operator's files, once it is checked; close it after.

    The links of the operator's own path are followed, as a shell would;
    what is checked, and then written in, is the directory they lead to.
    """
    import os

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MigrateError(
            f"cannot open the directory {path}: {os.strerror(exc.errno or errno.EIO)}",
            id="output-unwritable",
            path=path,
            hint="choose an --out in an existing directory",
        ) from None
    try:
        problem = directory_problem(fd, os.geteuid())
        if problem is not None:
            raise _unsafe(path, problem)
        yield OutputDir(fd, path)
    finally:
        os.close(fd)


def write_new(path: str, data: bytes, mode: int, *, hint_exists: str) -> None:
    """Write one new file for the operator at ``path`` (see the module's rules)."""
    where, name = split(path)
    with directory(where) as held:
        held.create(name, data, mode, hint_exists=hint_exists)
