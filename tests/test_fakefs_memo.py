"""Tests for ``memoized_paths``: pyfakefs made cheaper for a rehearsal gives the same answers, and is undone after.

The crash rehearsal's own proof (the same points and judgements with and
without it) is ``TestMemoizedAsPlain`` in ``tests/test_rehearsal_crash.py``.
"""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyfakefs.fake_file import FakeBinaryFileWrapper, FakeTextFileWrapper
from pyfakefs.fake_filesystem import FakeFilesystem

from migrate.testing import _fakefs
from migrate.testing._fakefs import _PURE_PATH_FUNCTIONS, fake_filesystem, memoized_paths

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
        with memoized_paths(fs):
            for _ in range(2):
                assert {name: _memo(fs, name, arg) for name in _PURE_PATH_FUNCTIONS} == plain

    def test_working_directory_is_part_of_the_key(self):
        fs = FakeFilesystem(path_separator="/")
        fs.create_dir("/tandberg/persistent")
        with memoized_paths(fs):
            fs.cwd = "/tandberg"
            assert fs.absnormpath("persistent") == "/tandberg/persistent"
            fs.cwd = "/"
            assert fs.absnormpath("persistent") == "/persistent"

    def test_a_list_is_handed_out_as_a_copy(self):
        fs = FakeFilesystem(path_separator="/")
        with memoized_paths(fs):
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
        with memoized_paths(fs):
            with pytest.raises(OSError):
                fs.normpath("/a//b")
            assert fs.normpath("/a//b") == "/a/b"
            assert fs.normpath("/a//b") == "/a/b"
        assert calls == ["/a//b", "/a//b"]
        assert vars(fs)["normpath"] is flaky  # the object's own attribute is given back

    def test_other_argument_types_are_not_remembered(self):
        fs = FakeFilesystem(path_separator="/")
        with memoized_paths(fs):
            assert fs.ends_with_path_separator(3) is False
            assert fs.normpath(os.fspath("/a/./b")) == "/a/b"
        assert "normpath" not in vars(fs)
        assert not any(name.startswith("_expressway") for name in vars(fs))


class TestUndone:
    def test_instance_and_classes_as_before_after_the_block(self):
        fs = FakeFilesystem(path_separator="/")
        lookups = (FakeBinaryFileWrapper.__dict__["__getattribute__"], FakeTextFileWrapper.__dict__["__getattribute__"])
        with memoized_paths(fs):
            assert all(name in vars(fs) for name in _PURE_PATH_FUNCTIONS)
            replaced = FakeBinaryFileWrapper.__dict__["__getattribute__"] is not lookups[0]
            assert replaced == _fakefs._known_internals()
        assert not any(name in vars(fs) for name in _PURE_PATH_FUNCTIONS)
        assert (
            FakeBinaryFileWrapper.__dict__["__getattribute__"],
            FakeTextFileWrapper.__dict__["__getattribute__"],
        ) == lookups

    def test_nested_blocks_keep_the_outer_memo(self):
        fs = FakeFilesystem(path_separator="/")
        with memoized_paths(fs):
            outer = vars(fs)["normpath"]
            with memoized_paths(fs):
                assert vars(fs)["normpath"] is outer
            assert vars(fs)["normpath"] is outer  # the inner block did not undo the outer one
        assert "normpath" not in vars(fs)

    def test_an_unknown_pyfakefs_release_gets_only_the_path_memo(self, monkeypatch):
        monkeypatch.setattr(_fakefs, "_KNOWN_PYFAKEFS", ((0, 1), (0, 2)))
        fs = FakeFilesystem(path_separator="/")
        before = FakeBinaryFileWrapper.__dict__["__getattribute__"]
        with memoized_paths(fs):
            assert "normpath" in vars(fs)
            assert FakeBinaryFileWrapper.__dict__["__getattribute__"] is before


def test_this_pyfakefs_is_a_known_release():
    """The wrappers' lookup is sped up on the pyfakefs this suite runs with (else the rehearsal's speed is not ours to
    claim: extend ``_KNOWN_PYFAKEFS`` once the suite passes on the new release)."""
    assert _fakefs._known_internals()


class TestFilesThroughTheWrappers:
    @pytest.mark.parametrize("memo", [False, True], ids=["plain", "memoized"])
    def test_files_read_written_and_named_alike(self, memo):
        """Files opened, written, read, sought and closed through pyfakefs's wrappers behave the same either way,
        and an attribute a wrapper lacks is still an AttributeError.  (Not on the ``fs`` fixture: the suite runs
        that one memoized.)"""
        import contextlib

        with fake_filesystem() as fs, memoized_paths(fs) if memo else contextlib.nullcontext():
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
