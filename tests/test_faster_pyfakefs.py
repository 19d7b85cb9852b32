"""Tests for ``faster_pyfakefs``: pyfakefs made cheaper for a rehearsal gives the same answers, and is undone after.

The crash rehearsal's own proof (the same points and judgements with and
without it) is ``TestFasterAsPlain`` in ``tests/test_rehearsal_crash.py``.
"""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyfakefs.fake_file import FakeBinaryFileWrapper, FakeTextFileWrapper
from pyfakefs.fake_filesystem import FakeFilesystem

from migrate.testing import _faster
from migrate.testing._fakefs import fake_filesystem
from migrate.testing._faster import _PURE_PATH_FUNCTIONS, faster_pyfakefs

SEGMENTS = ["", ".", "..", "a", "b", "certs", "x.pem", " ", "é", "a\\b", ":"]
paths = st.lists(st.sampled_from(SEGMENTS), max_size=6).flatmap(
    lambda parts: st.sampled_from(
        ["/".join(parts), "/" + "/".join(parts), "//" + "/".join(parts), "/".join(parts) + "/"]
    )
)


def _plain(fs, name: str, path):
    """What pyfakefs itself answers (the class's method, never the memo)."""
    try:
        return getattr(FakeFilesystem, name)(fs, path)
    except Exception as exc:  # noqa: BLE001 - compared as a value below
        return type(exc)


def _memo(fs, name: str, path):
    try:
        return getattr(fs, name)(path)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


class TestSameAnswers:
    @given(path=paths, encode=st.booleans(), cwd=st.sampled_from(["/", "/tandberg", "/tandberg/persistent"]))
    def test_every_function_answers_as_pyfakefs(self, path, encode, cwd):
        """For any path (str or bytes, any working directory), each remembered function answers as pyfakefs does,
        the first time (computed) and the second (remembered)."""
        fs = FakeFilesystem(path_separator="/")
        fs.create_dir("/tandberg/persistent")
        fs.cwd = cwd
        arg = path.encode() if encode else path
        plain = {name: _plain(fs, name, arg) for name in _PURE_PATH_FUNCTIONS}
        with faster_pyfakefs(fs):
            for _ in range(2):
                assert {name: _memo(fs, name, arg) for name in _PURE_PATH_FUNCTIONS} == plain

    def test_working_directory_is_part_of_the_key(self):
        fs = FakeFilesystem(path_separator="/")
        fs.create_dir("/tandberg/persistent")
        with faster_pyfakefs(fs):
            fs.cwd = "/tandberg"
            assert fs.absnormpath("persistent") == "/tandberg/persistent"
            fs.cwd = "/"
            assert fs.absnormpath("persistent") == "/persistent"

    def test_a_list_is_handed_out_as_a_copy(self):
        fs = FakeFilesystem(path_separator="/")
        with faster_pyfakefs(fs):
            first = fs._path_components("/a/b")
            first.append("spoiled")
            assert fs._path_components("/a/b") == ["a", "b"]

    def test_an_exception_is_not_remembered(self):
        fs = FakeFilesystem(path_separator="/")
        calls = []
        original = fs.normpath

        def flaky(path):
            calls.append(path)
            if len(calls) == 1:
                raise OSError(errno.EIO, "once")
            return original(path)

        fs.normpath = flaky  # the memo wraps what it finds on the object
        with faster_pyfakefs(fs):
            with pytest.raises(OSError):
                fs.normpath("/a//b")
            assert fs.normpath("/a//b") == "/a/b"
            assert fs.normpath("/a//b") == "/a/b"
        assert calls == ["/a//b", "/a//b"]
        assert vars(fs)["normpath"] is flaky  # the object's own attribute is given back

    def test_other_argument_types_are_not_remembered(self):
        fs = FakeFilesystem(path_separator="/")
        with faster_pyfakefs(fs):
            assert fs.ends_with_path_separator(3) is False
            assert fs.normpath(os.fspath("/a/./b")) == "/a/b"
        assert "normpath" not in vars(fs)
        assert not any(name.startswith("_expressway") for name in vars(fs))


class TestUndone:
    def test_instance_and_classes_as_before_after_the_block(self):
        fs = FakeFilesystem(path_separator="/")
        lookups = (FakeBinaryFileWrapper.__dict__["__getattribute__"], FakeTextFileWrapper.__dict__["__getattribute__"])
        with faster_pyfakefs(fs):
            assert all(name in vars(fs) for name in _PURE_PATH_FUNCTIONS)
            replaced = FakeBinaryFileWrapper.__dict__["__getattribute__"] is not lookups[0]
            assert replaced == _faster._known_internals()
        assert not any(name in vars(fs) for name in _PURE_PATH_FUNCTIONS)
        assert (
            FakeBinaryFileWrapper.__dict__["__getattribute__"],
            FakeTextFileWrapper.__dict__["__getattribute__"],
        ) == lookups

    def test_nested_blocks_keep_the_outer_memo(self):
        fs = FakeFilesystem(path_separator="/")
        with faster_pyfakefs(fs):
            outer = vars(fs)["normpath"]
            with faster_pyfakefs(fs):
                assert vars(fs)["normpath"] is outer
            assert vars(fs)["normpath"] is outer  # the inner block did not undo the outer one
        assert "normpath" not in vars(fs)

    @pytest.mark.parametrize("first", ["open", "mkdir"])
    def test_calls_relative_to_a_directory_work_before_during_and_after(self, first):
        """pyfakefs decides once per fake ``os`` which of its functions take ``dir_fd``: whether that is first
        decided inside a block (by the replaced ``open`` or by another call) or before it, ``open`` and ``stat``
        relative to a directory work inside it, after it, and in a second block."""
        directory = os.O_RDONLY | os.O_DIRECTORY
        with fake_filesystem() as fs:
            os.makedirs("/n/d")
            held = os.open("/n", directory)
            with faster_pyfakefs(fs):
                if first == "mkdir":
                    os.mkdir("e", dir_fd=held)
                os.close(os.open("d", directory, dir_fd=held))
                assert os.stat("d", dir_fd=held).st_mode & 0o170000 == 0o040000
            os.close(os.open("d", directory, dir_fd=held))
            assert os.stat("d", dir_fd=held, follow_symlinks=False).st_nlink >= 2
            with faster_pyfakefs(fs):
                os.close(os.open("d", directory, dir_fd=held))

    def test_an_unknown_pyfakefs_release_gets_only_the_path_memo(self, monkeypatch):
        monkeypatch.setattr(_faster, "_KNOWN_PYFAKEFS", ((0, 1), (0, 2)))
        fs = FakeFilesystem(path_separator="/")
        before = FakeBinaryFileWrapper.__dict__["__getattribute__"]
        with faster_pyfakefs(fs):
            assert "normpath" in vars(fs)
            assert FakeBinaryFileWrapper.__dict__["__getattribute__"] is before


class TestFilesThroughTheWrappers:
    @pytest.mark.parametrize("memo", [False, True], ids=["plain", "memoized"])
    def test_files_read_written_and_named_alike(self, memo):
        """Files opened, written, read, sought and closed through pyfakefs's wrappers behave the same either way,
        and an attribute a wrapper lacks is still an AttributeError.  (Not on the ``fs`` fixture: the suite runs
        that one under ``faster_pyfakefs``.)"""
        import contextlib

        with fake_filesystem() as fs, faster_pyfakefs(fs) if memo else contextlib.nullcontext():
            os.makedirs("/n")
            fd = os.open("/n/a.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            assert os.write(fd, b"bytes\x00\xff") == 7
            os.close(fd)
            with open("/n/a.pem", "rb") as f:
                assert f.read(2) == b"by"
                assert f.seek(0, os.SEEK_END) == 7
                assert f.name == "/n/a.pem"
                with pytest.raises(AttributeError):
                    _ = f.no_such_attribute
            with open("/n/b.txt", "w", encoding="utf-8") as f:
                f.write("text\n")
            with open("/n/b.txt", encoding="utf-8") as f:
                assert f.readlines() == ["text\n"]
            assert os.stat("/n/a.pem").st_mode & 0o777 == 0o600


def _observe(step) -> object:
    """What one step gives: its value, or the error's type and errno."""
    try:
        return ("ok", step())
    except Exception as exc:  # noqa: BLE001 - compared as a value
        return ("error", type(exc).__name__, getattr(exc, "errno", None))


def _held_directory_story(memo: bool, user: int = 0) -> list:
    """Opens and stats relative to held directories, every case the fast ones take and every one they leave to
    pyfakefs, observed (values, errors, fds, modes, what is read, what pyfakefs marks on the file)."""
    import contextlib
    import stat

    from pyfakefs.helpers import set_uid

    seen: list = []
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    names = ("ca.pem", "privkey.pem", "link.pem", "missing.pem", "fifo", "sub", "sub/inner.pem", "..", "")
    with fake_filesystem() as fs, faster_pyfakefs(fs) if memo else contextlib.nullcontext():
        fs.create_file("/n/certs/ca.pem", st_mode=stat.S_IFREG | 0o644, contents=b"ca bytes")
        fs.create_file("/n/certs/privkey.pem", st_mode=stat.S_IFREG | 0o400, contents=b"key")
        fs.create_file("/n/certs/fifo", st_mode=stat.S_IFIFO | 0o600)
        fs.create_symlink("/n/certs/link.pem", "ca.pem")
        fs.create_file("/n/certs/sub/inner.pem", contents=b"inner")
        certs = os.open("/n/certs", os.O_RDONLY | os.O_DIRECTORY)
        set_uid(user)
        try:
            for name in names:
                for how in (flags, flags | os.O_DIRECTORY, os.O_RDONLY):
                    seen.append((name, how, _observe(lambda n=name, h=how: os.open(n, h, 0o644, dir_fd=certs))))
                for follow in (False, True):
                    stat_of = lambda n=name, f=follow: _stat_fields(os.stat(n, dir_fd=certs, follow_symlinks=f))  # noqa: E731
                    seen.append((name, follow, _observe(stat_of)))
        finally:
            set_uid(0)
        fd = os.open("ca.pem", flags, 0o640, dir_fd=certs)
        seen.append(("read", os.read(fd, 100), os.read(fd, 100), _stat_fields(os.fstat(fd))))
        seen.append(("opened_as", fs.get_object("/n/certs/ca.pem").opened_as))
        os.close(fd)
        seen.append(("mode after open", oct(os.stat("/n/certs/ca.pem").st_mode)))
        creating = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        seen.append(("create", _observe(lambda: os.open("new.pem", creating, 0o600, dir_fd=certs))))
        seen.append(("create over", _observe(lambda: os.open("ca.pem", creating, 0o600, dir_fd=certs))))
        sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY, dir_fd=certs)
        seen.append(("listdir", sorted(os.listdir(sub)), fs.get_open_file(sub).file_path))
        top = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        at_top = os.open("n", os.O_RDONLY | os.O_DIRECTORY, dir_fd=top)
        seen.append(("from the root", fs.get_open_file(at_top).file_path))
        os.rename("/n/certs/sub", "/n/certs/moved")  # the held directory moves, with its name: the same object
        seen.append(("moved", _observe(lambda: os.read(os.open("inner.pem", flags, dir_fd=sub), 100))))
        # Taken out of its parent whole (pyfakefs's own API: no os call leaves a full directory detached), and
        # another put at its path: pyfakefs resolves the path, so it finds the other one's file.
        fs.get_object("/n/certs").remove_entry("moved", recursive=False)
        fs.create_file("/n/certs/moved/inner.pem", contents=b"the other one")
        seen.append(("detached", _observe(lambda: os.read(os.open("inner.pem", flags, dir_fd=sub), 100))))
        seen.append(("detached stat", _observe(lambda: os.stat("inner.pem", dir_fd=sub).st_size)))
    return seen


def _stat_fields(st) -> tuple:
    return (st.st_mode, st.st_ino, st.st_nlink, st.st_uid, st.st_gid, st.st_size)


def _replace_story(memo: bool) -> list:
    """Replaces by plain names between held directories, every case the fast one takes and every one it leaves
    to pyfakefs, observed with the whole file system after each (inodes, links, entries in order, bytes)."""
    import contextlib
    import stat

    seen: list = []
    cases = [
        ("hard", "x"),  # onto the same file under another name
        ("a", "new"),  # onto a new name
        ("b", "c"),  # onto another file
        ("c", "c"),  # one name for both
        ("d", "c"),  # a directory onto a file
        ("c", "d"),  # a file onto a directory
        ("link", "new"),  # a link
        ("new", "x2"),  # onto a link
        ("missing", "y"),
        ("sub/e", "z"),
        ("x", "elsewhere"),  # into the other held directory
    ]
    with fake_filesystem() as fs, faster_pyfakefs(fs) if memo else contextlib.nullcontext():
        for name, data in (("a", b"a"), ("b", b"b"), ("c", b"c"), ("x", b"x"), ("sub/e", b"e"), ("/n/o/f", b"f")):
            fs.create_file(name if name.startswith("/") else f"/n/s/{name}", contents=data)
        fs.create_dir("/n/s/d")
        fs.create_symlink("/n/s/link", "a")
        fs.create_symlink("/n/s/x2", "x")
        os.link("/n/s/x", "/n/s/hard")
        fs.get_object("/n/s/a").st_mode = stat.S_IFREG | 0o600
        here = os.open("/n/s", os.O_RDONLY | os.O_DIRECTORY)
        there = os.open("/n/o", os.O_RDONLY | os.O_DIRECTORY)
        for src, dst in cases:
            target = there if dst == "elsewhere" else here
            outcome = _observe(lambda s=src, d=dst, t=target: os.replace(s, d, src_dir_fd=here, dst_dir_fd=t))
            seen.append((src, dst, outcome, _dump(fs, times=False)))
    return seen


def _create_story(memo: bool) -> list:
    """Exclusive creations by plain names in held directories, every case the fast one takes and every one it
    leaves to pyfakefs, observed with the whole file system after each."""
    import contextlib

    seen: list = []
    create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    cases = [
        ("new.tmp", create, 0o600),
        ("rw.tmp", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640),
        ("nomode.tmp", create, None),
        ("new.tmp", create, 0o600),  # exists now
        ("dangling", create, 0o600),  # a link to nothing
        ("trunc.tmp", create | os.O_TRUNC, 0o600),
        ("append.tmp", create | os.O_APPEND, 0o600),
        ("plain.tmp", os.O_WRONLY | os.O_CREAT, 0o600),  # without O_EXCL
        ("sub/x.tmp", create, 0o600),
        ("dir.tmp", create | os.O_DIRECTORY, 0o600),
    ]
    with fake_filesystem() as fs, faster_pyfakefs(fs) if memo else contextlib.nullcontext():
        fs.create_dir("/n/s/sub")
        fs.create_symlink("/n/s/dangling", "nowhere")
        os.umask(0o022)
        here = os.open("/n/s", os.O_RDONLY | os.O_DIRECTORY)
        for name, flags, mode in cases:
            if mode is None:
                outcome = _observe(lambda n=name, f=flags: os.open(n, f, dir_fd=here))
            else:
                outcome = _observe(lambda n=name, f=flags, m=mode: os.open(n, f, m, dir_fd=here))
            if outcome[0] == "ok":
                fd = outcome[1]
                written = _observe(lambda fd=fd: os.write(fd, b"staged bytes"))
                read = _observe(lambda fd=fd: os.read(fd, 5))
                stat_fields = _stat_fields(os.fstat(fd))
                os.close(fd)
                outcome = (outcome, written, read, stat_fields, fs.get_object(f"/n/s/{name}").opened_as)
            seen.append((name, flags, mode, outcome, _dump(fs, times=False)))
    return seen


def _unlink_story(faster: bool) -> list:
    """Unlinks by plain names in a held directory, every case the fast one takes and every one it leaves to
    pyfakefs, observed with the whole file system after each."""
    import contextlib

    seen: list = []
    with fake_filesystem() as fs, faster_pyfakefs(fs) if faster else contextlib.nullcontext():
        for name in ("a", "b", "hard", "sub/c"):
            fs.create_file(f"/n/s/{name}", contents=name.encode())
        os.link("/n/s/b", "/n/s/b2")
        fs.create_dir("/n/s/d")
        fs.create_symlink("/n/s/link", "a")
        fs.create_symlink("/n/s/dirlink", "d")
        here = os.open("/n/s", os.O_RDONLY | os.O_DIRECTORY)
        for name in ("a", "b", "link", "dirlink", "d", "missing", "sub/c", "..", "", "a"):
            outcome = _observe(lambda n=name: os.unlink(n, dir_fd=here))
            seen.append((name, outcome, _dump(fs, times=False)))
    return seen


class TestHeldDirectories:
    @pytest.mark.parametrize("faster", [False, True], ids=["plain", "faster"])
    def test_held_directory_calls_do_not_resolve_from_the_root(self, faster):
        """Under ``faster_pyfakefs`` the calls it takes straight (open to read a file or a directory, exclusive
        creation, stat, replace, unlink in a held directory) never resolve a path from the root; pyfakefs's own
        do (the plain run shows the count would see them)."""
        import contextlib

        with fake_filesystem() as fs, faster_pyfakefs(fs) if faster else contextlib.nullcontext():
            fs.create_file("/n/s/a.pem", contents=b"a")
            fs.create_dir("/n/s/sub")
            held = os.open("/n/s", os.O_RDONLY | os.O_DIRECTORY)
            resolved: list[str] = []
            resolve_path = fs.resolve_path

            def counted(path, *args, **kwargs):
                resolved.append(path)
                return resolve_path(path, *args, **kwargs)

            fs.resolve_path = counted
            read = os.O_RDONLY | os.O_NOFOLLOW
            os.close(os.open("a.pem", read, 0o644, dir_fd=held))
            os.close(os.open("sub", read | os.O_DIRECTORY, dir_fd=held))
            os.stat("a.pem", dir_fd=held, follow_symlinks=False)
            os.close(os.open("b.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=held))
            os.replace("b.tmp", "a.pem", src_dir_fd=held, dst_dir_fd=held)
            os.unlink("a.pem", dir_fd=held)
            del fs.resolve_path
        assert (resolved == []) == faster, resolved

    def test_unlink_answers_as_pyfakefs(self):
        """In a directory held open, ``unlink`` does exactly what pyfakefs's own does, case by case (a file, one of
        two hard links, links, a directory, a missing name, a path, ``..``): the same errors and file system."""
        assert _unlink_story(faster=True) == _unlink_story(faster=False)

    def test_exclusive_creation_answers_as_pyfakefs(self):
        """In a directory held open, an exclusive ``open(..., O_CREAT | O_EXCL)`` does exactly what pyfakefs's own
        does, case by case: the same errors and descriptors, the same new file (mode, owner, bytes once written,
        what it is marked opened as), and the same file system after."""
        assert _create_story(memo=True) == _create_story(memo=False)

    def test_replace_answers_as_pyfakefs(self):
        """Between directories held open, ``replace`` does exactly what pyfakefs's own does, case by case: the same
        errors, and the same file system after (entries and their order, inodes, link counts, bytes)."""
        assert _replace_story(memo=True) == _replace_story(memo=False)

    @pytest.mark.parametrize("user", [0, 1000], ids=["root", "user"])
    def test_open_and_stat_answer_as_pyfakefs(self, user):
        """Relative to a directory held open, ``open`` and ``stat`` answer exactly as pyfakefs's own: the same
        values, errors, descriptors, bytes, modes, marks, as root and as another user, a detached directory
        included."""
        assert _held_directory_story(memo=True, user=user) == _held_directory_story(memo=False, user=user)

    def test_an_open_touches_the_file_as_pyfakefs_does(self):
        """pyfakefs's ``open`` of an existing file applies the mode given and touches ``st_ctime``; so does the
        fast one (the engine passes the file's own mode, so the bits stay)."""
        with fake_filesystem() as fs, faster_pyfakefs(fs):
            fs.create_file("/n/a.pem", st_mode=0o100644, contents=b"a")
            entry = fs.get_object("/n/a.pem")
            entry.st_ctime = 1.0
            held = os.open("/n", os.O_RDONLY | os.O_DIRECTORY)
            os.close(os.open("a.pem", os.O_RDONLY, 0o600, dir_fd=held))
            assert (entry.st_mode & 0o777, entry.st_ctime > 1.0) == (0o600, True)


# -- FakeState: a fake file system put back exactly --------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "mkdir",
                "rmdir",
                "unlink",
                "rename",
                "chmod",
                "chown",
                "link",
                "symlink",
                "write",
                "xattr",
                "leak",
            ]
        ),
        st.sampled_from(["/n/a", "/n/b", "/n/d", "/n/d/c", "/n/e"]),
        st.sampled_from(["/n/a", "/n/b", "/n/d", "/n/d/c", "/n/e"]),
        st.binary(max_size=12),
    ),
    max_size=12,
)


def _apply_op(os, op) -> object:  # noqa: A002 - pyfakefs's os module, as the engine sees it
    """Carry out one operation; what it gave, or its error's errno."""
    name, path, other, data = op
    try:
        if name == "create":
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.write(fd, data)
            os.close(fd)
        elif name == "mkdir":
            os.mkdir(path, 0o750)
        elif name == "rmdir":
            os.rmdir(path)
        elif name == "unlink":
            os.unlink(path)
        elif name == "rename":
            os.replace(path, other)
        elif name == "chmod":
            os.chmod(path, 0o600 if data else 0o444)
        elif name == "chown":
            os.chown(path, len(data), 7)
        elif name == "link":
            os.link(path, other)
        elif name == "symlink":
            os.symlink(other, path)
        elif name == "write":
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, data)
            os.close(fd)
        elif name == "xattr":
            os.setxattr(path, "user.x", data or b"-")
        elif name == "leak":
            return os.open(path, os.O_RDONLY)  # left open, as a writer cut off mid-run leaves its descriptors
        return "ok"
    except OSError as exc:
        return exc.errno


def _dump(fs, *, times: bool = True) -> tuple:
    """Everything observable of the fake file system: every object by path, with every stat field and its bytes,
    extended attributes and link target; the descriptors open; the inode counter; the mounts' usage."""
    import stat as stat_module

    from migrate.testing._snapshot import fake_tree

    objects = []
    for rel in sorted(fake_tree(fs, "/")):
        obj = fs.lresolve("/" + rel)
        st_ = obj.stat_result
        objects.append(
            (
                rel,
                st_.st_mode,
                st_.st_ino,
                st_.st_nlink,
                st_.st_uid,
                st_.st_gid,
                st_.st_size,
                st_.st_mtime_ns if times else None,
                st_.st_ctime_ns if times else None,
                dict(obj.xattr),
                None if stat_module.S_ISDIR(st_.st_mode) else obj.byte_contents,
                list(obj.entries) if stat_module.S_ISDIR(st_.st_mode) else None,
            )
        )
    open_fds = [fd for fd, files in enumerate(fs.open_files) if files]
    return objects, open_fds, fs.last_ino, {k: dict(v) for k, v in fs.mount_points.items()}


def _story(setup, excursion, after, *, restores: int) -> tuple:
    """``setup``, then (``restores`` times) the ``excursion`` and a restore, then ``after``: what each gave, and the
    file system at the end (times aside: each story has its own clock)."""
    from pyfakefs.fake_filesystem import FakeFilesystem
    from pyfakefs.fake_os import FakeOsModule
    from pyfakefs.helpers import get_uid, set_uid

    from migrate.testing._snapshot import FakeState

    uid = get_uid()
    set_uid(0)
    try:
        fs = FakeFilesystem(path_separator="/")
        fake_os = FakeOsModule(fs)
        fs.create_dir("/n/d")
        given = [_apply_op(fake_os, op) for op in setup]
        before = _dump(fs)
        state = FakeState(fs)
        for _ in range(restores):
            for op in excursion:
                _apply_op(fake_os, op)
            state.restore()
            assert _dump(fs) == before
        return given, [_apply_op(fake_os, op) for op in after], _dump(fs, times=False)
    finally:
        set_uid(uid)


class TestFakeState:
    @given(setup=OPS, excursion=OPS, after=OPS)
    def test_a_restored_file_system_is_one_that_never_left(self, setup, excursion, after):
        """Whatever happened after the state was taken, restoring it (once or twice) gives the file system back
        object by object, and what is done next gives what it would have given had nothing happened: the same
        answers, descriptors, inode numbers, bytes, times and order of entries."""
        plain = _story(setup, [], after, restores=0)
        assert _story(setup, excursion, after, restores=1) == plain
        assert _story(setup, excursion, after, restores=2) == plain

    def test_open_descriptors_are_put_back_too(self):
        """A descriptor open when the state was taken sees the file as it was after the restore, though a write
        through another descriptor on the same file refreshed it meanwhile: writing on through it gives what it
        would have given had nothing happened."""

        def story(excursion: bool) -> bytes:
            from pyfakefs.fake_filesystem import FakeFilesystem
            from pyfakefs.fake_os import FakeOsModule

            from migrate.testing._snapshot import FakeState

            fs = FakeFilesystem(path_separator="/")
            fake_os = FakeOsModule(fs)
            fs.create_dir("/n")
            held = fake_os.open("/n/lock", os.O_RDWR | os.O_CREAT, 0o600)
            fake_os.write(held, b"1234")
            state = FakeState(fs)
            if excursion:
                other = fake_os.open("/n/lock", os.O_RDWR)
                fake_os.ftruncate(other, 0)
                fake_os.write(other, b"99")
                fake_os.close(other)
                state.restore()
            fake_os.write(held, b"56")
            fake_os.close(held)
            return fs.get_object("/n/lock").byte_contents

        assert story(excursion=True) == story(excursion=False) == b"123456"
