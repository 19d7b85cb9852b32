"""Tests for migrate.testing.tree: a directory tree as a value."""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from migrate.testing.tree import Entry, TreeTooLarge, diff_trees, read_tree, write_tree


def _sample() -> dict[str, Entry]:
    """A small node-like tree touching every case write_tree handles."""
    return {
        "persistent": Entry("dir", 0o755, 0, 0),
        "persistent/certs": Entry("dir", 0o755, 0, 0),
        "persistent/certs/ca.pem": Entry("file", 0o644, 65534, 65534, data=b"-----BEGIN CERTIFICATE-----\n"),
        "persistent/certs/privkey.pem": Entry("file", 0o440, 0, 0, data=b"key\x00\xff bytes"),
        "persistent/certs/server-ssh.pem": Entry("file", 0o600, 1001, 1001, data=b""),
        "persistent/certs/multidomaincerts": Entry("dir", 0o700, 0, 0),
        "persistent/certs/multidomaincerts/a.pem": Entry("file", 0o600, 0, 0, data=b"a"),
        "persistent/certs/locked": Entry("dir", 0o500, 65534, 65534),
        "persistent/certs/locked/inner.txt": Entry("file", 0o400, 65534, 65534, data=b"inner\r\n"),
        "persistent/certs/setuid-tool": Entry("file", 0o4755, 1001, 1001, data=b"#!/bin/sh\n"),
        "persistent/certs/link.pem": Entry("symlink", 0o777, 65534, 65534, target="ca.pem"),
        "persistent/xconfiguration.txt": Entry("file", 0o644, 0, 0, data=b"*c xConfiguration SIP Mode: On\n"),
    }


class TestEntry:
    def test_repr_hides_file_bytes(self):
        """An entry's repr shows the size and digest of its data, never the bytes (they may be a key)."""
        entry = Entry("file", 0o440, 0, 0, data=b"-----BEGIN PRIVATE KEY-----secret")
        assert "secret" not in repr(entry)
        assert "33 bytes" in repr(entry)
        assert "mode=0o440" in repr(entry)

    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(kind="file", mode=0o644, uid=0, gid=0),  # a file without data
            dict(kind="dir", mode=0o755, uid=0, gid=0, data=b"x"),  # a dir with data
            dict(kind="symlink", mode=0o777, uid=0, gid=0),  # a symlink without target
            dict(kind="pipe", mode=0o644, uid=0, gid=0),  # unknown kind
            dict(kind="dir", mode=0o100755, uid=0, gid=0),  # file type bits in mode
            dict(kind="dir", mode=0o755, uid=-1, gid=0),  # negative uid
        ],
    )
    def test_rejects_inconsistent_entries(self, kwargs):
        """An entry whose fields contradict its kind, or are out of range, is refused at construction."""
        with pytest.raises(ValueError):
            Entry(**kwargs)


class TestRoundTrip:
    def test_real_fs_round_trip(self, tmp_path):
        """A tree written to a real directory reads back identical: bytes, modes (0440, 0700, 0500, setuid), owners, symlink."""
        tree = _sample()
        write_tree(tree, tmp_path / "node")
        assert read_tree(tmp_path / "node") == tree
        assert os.stat(tmp_path / "node/persistent/certs/privkey.pem").st_mode & 0o7777 == 0o440
        assert os.lstat(tmp_path / "node/persistent/certs/server-ssh.pem").st_uid == 1001

    def test_fake_fs_round_trip(self, fs):
        """A tree written into pyfakefs reads back identical, the same as on the real file system."""
        tree = _sample()
        write_tree(tree, "/rehearsal/node")
        assert read_tree("/rehearsal/node") == tree

    def test_real_node_rehearsed_in_fake_fs(self, tmp_path):
        """A tree read from the real disk, written into a fake file system, reads back equal there."""
        write_tree(_sample(), tmp_path / "node")
        real = read_tree(tmp_path / "node")
        with Patcher():
            write_tree(real, "/tandberg")
            fake = read_tree("/tandberg")
            assert not os.path.exists(tmp_path)  # really inside the fake file system
        assert fake == real

    def test_write_creates_parents_of_root(self, fs):
        """write_tree creates the root and its missing parents."""
        write_tree({"a": Entry("file", 0o644, 0, 0, data=b"1")}, "/x/y/z")
        assert Path("/x/y/z/a").read_bytes() == b"1"

    def test_owners_false_keeps_writer_owner(self, tmp_path):
        """With owners=False, entries belong to the writing user whatever the tree says."""
        write_tree(_sample(), tmp_path / "node", owners=False)
        got = read_tree(tmp_path / "node")
        assert {(e.uid, e.gid) for e in got.values()} == {(os.geteuid(), os.getegid())}
        assert got["persistent/certs/privkey.pem"].mode == 0o440

    def test_never_calls_unfaked_chown(self, fs, monkeypatch):
        """write_tree sets owners without os.lchown/os.fchown, which pyfakefs does not fake."""

        def boom(*args, **kwargs):
            raise AssertionError("reached the real disk")

        monkeypatch.setattr(os, "lchown", boom)
        monkeypatch.setattr(os, "fchown", boom)
        write_tree(_sample(), "/node")
        assert read_tree("/node")["persistent/certs/link.pem"].uid == 65534


class TestReadTree:
    def test_symlink_recorded_not_followed(self, tmp_path):
        """A symlink to a directory outside the root is recorded with its target; nothing behind it is read."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.pem").write_bytes(b"x")
        root = tmp_path / "root"
        root.mkdir()
        os.symlink(outside, root / "certs")
        tree = read_tree(root)
        assert set(tree) == {"certs"}
        assert tree["certs"].kind == "symlink"
        assert tree["certs"].target == str(outside)

    def test_fifo_recorded_not_opened(self, tmp_path):
        """A FIFO is recorded by kind without being opened (which would hang)."""
        os.mkfifo(tmp_path / "pipe", 0o600)
        tree = read_tree(tmp_path)
        assert tree == {"pipe": Entry("fifo", 0o600, os.geteuid(), os.getegid())}

    def test_large_file_refused(self, tmp_path):
        """A file larger than max_file_bytes raises ValueError instead of being loaded."""
        (tmp_path / "big").write_bytes(b"x" * 11)
        with pytest.raises(ValueError, match="max_file_bytes"):
            read_tree(tmp_path, max_file_bytes=10)
        assert read_tree(tmp_path, max_file_bytes=11)["big"].data == b"x" * 11

    def test_root_must_be_a_real_directory(self, tmp_path):
        """A root that is a file, or a symlink to a directory, is refused."""
        (tmp_path / "f").write_bytes(b"")
        os.symlink(tmp_path, tmp_path / "link")
        with pytest.raises(NotADirectoryError):
            read_tree(tmp_path / "f")
        with pytest.raises(NotADirectoryError):
            read_tree(tmp_path / "link")

    def test_keys_are_relative_posix_paths(self, fs):
        """Keys are POSIX paths relative to the root, without the root itself."""
        fs.create_file("/r/a/b/c.txt", contents=b"c")
        assert set(read_tree("/r")) == {"a", "a/b", "a/b/c.txt"}


class TestReadTreeCaps:
    def test_sparse_files_refused_before_reading(self, tmp_path):
        """Sparse 63 MiB files past the total cap are refused by their listed sizes, quickly, with peak memory under 16 MiB."""
        csr = tmp_path / "persistent" / "certs" / "generated_csr"
        csr.mkdir(parents=True)
        for n in range(6):
            with open(csr / f"csr-{n}.pem", "wb") as f:
                f.truncate(63 << 20)
        assert os.stat(csr / "csr-0.pem").st_blocks == 0  # sparse: no disk used
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(TreeTooLarge, match="max_total_bytes") as caught:
                read_tree(tmp_path, max_total_bytes=64 << 20, max_entries=10_000)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 5
        assert peak < 16 << 20, f"peak {peak} bytes"
        assert (caught.value.cap, caught.value.limit) == ("max_total_bytes", 64 << 20)
        assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do

    @pytest.mark.parametrize("where", ["real", "fake"])
    def test_total_cap_boundary(self, tmp_path, where):
        """Files that add up to exactly max_total_bytes are read; one byte more is refused, on the real disk and in pyfakefs alike."""

        def check(root: str) -> None:
            os.makedirs(os.path.join(root, "d"))
            for name, size in (("a", 6), ("d/b", 4)):
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"x" * size)
            tree = read_tree(root, max_total_bytes=10)
            assert (tree["a"].data, tree["d/b"].data) == (b"x" * 6, b"x" * 4)
            with pytest.raises(TreeTooLarge) as caught:
                read_tree(root, max_total_bytes=9)
            assert caught.value.cap == "max_total_bytes"

        if where == "real":
            check(str(tmp_path))
        else:
            with Patcher():
                check("/node")

    @pytest.mark.parametrize("where", ["real", "fake"])
    def test_entry_cap_boundary(self, tmp_path, where):
        """A tree of exactly max_entries paths (directories and empty files) is read; one path more is refused."""

        def check(root: str) -> None:
            os.makedirs(os.path.join(root, "d", "e"))
            for rel in ("f", "d/g", "d/e/h"):
                with open(os.path.join(root, rel), "wb") as f:
                    f.write(b"")
            assert set(read_tree(root, max_entries=5)) == {"d", "d/e", "f", "d/g", "d/e/h"}
            with pytest.raises(TreeTooLarge, match="max_entries") as caught:
                read_tree(root, max_entries=4)
            assert (caught.value.cap, caught.value.limit) == ("max_entries", 4)

        if where == "real":
            check(str(tmp_path))
        else:
            with Patcher():
                check("/node")

    def test_no_cap_by_default(self, tmp_path):
        """Without max_total_bytes or max_entries the tree is not bounded as a whole (only each file, by max_file_bytes)."""
        for n in range(3):
            (tmp_path / f"f{n}").write_bytes(b"x" * 8)
        tree = read_tree(tmp_path, max_file_bytes=8)
        assert sorted(tree) == ["f0", "f1", "f2"] and all(e.data == b"x" * 8 for e in tree.values())


class TestWriteTree:
    @pytest.mark.parametrize("kind", ["fifo", "socket", "device", "other"])
    def test_special_kinds_refused_before_writing(self, tmp_path, kind):
        """A tree with a FIFO, socket or device raises NotImplementedError and writes nothing at all."""
        tree = {"a.pem": Entry("file", 0o644, 0, 0, data=b"a"), "special": Entry(kind, 0o644, 0, 0)}
        with pytest.raises(NotImplementedError):
            write_tree(tree, tmp_path / "node")
        assert not (tmp_path / "node").exists()

    def test_existing_entry_refused(self, fs):
        """Writing over an existing entry raises FileExistsError: trees are written, not merged."""
        fs.create_file("/node/a.pem", contents=b"old")
        with pytest.raises(FileExistsError):
            write_tree({"a.pem": Entry("file", 0o644, 0, 0, data=b"new")}, "/node")
        assert Path("/node/a.pem").read_bytes() == b"old"

    @pytest.mark.parametrize("key", ["/abs", "a/../b", "./a", "a//b", "a/"])
    def test_bad_paths_refused(self, fs, key):
        """Absolute, unnormalised or empty-component paths are refused."""
        tree = {"a": Entry("dir", 0o755, 0, 0), key: Entry("file", 0o644, 0, 0, data=b"")}
        with pytest.raises(ValueError):
            write_tree(tree, "/node")
        assert not os.path.exists("/node")

    def test_missing_parent_refused(self, fs):
        """An entry whose parent directory is not in the tree is refused."""
        with pytest.raises(ValueError, match="parent"):
            write_tree({"certs/a.pem": Entry("file", 0o644, 0, 0, data=b"")}, "/node")

    def test_setuid_bit_survives_chown(self, tmp_path):
        """Modes are applied after owners, so chown cannot clear a setuid bit."""
        write_tree({"tool": Entry("file", 0o4755, 1001, 1001, data=b"")}, tmp_path)
        assert stat.S_IMODE(os.stat(tmp_path / "tool").st_mode) == 0o4755


class TestDiffTrees:
    def test_identical_trees(self):
        """Identical trees give no lines."""
        assert diff_trees(_sample(), _sample()) == []

    def test_every_kind_of_difference(self):
        """Each difference is one human line naming the path."""
        before = _sample()
        after = dict(before)
        del after["persistent/certs/ca.pem"]
        after["persistent/certs/client.pem"] = Entry("file", 0o644, 65534, 65534, data=b"c")
        after["persistent/certs/privkey.pem"] = Entry("file", 0o600, 65534, 65534, data=b"other")
        after["persistent/certs/link.pem"] = Entry("symlink", 0o777, 65534, 65534, target="server.pem")
        after["persistent/certs/server-ssh.pem"] = Entry("dir", 0o600, 1001, 1001)
        assert diff_trees(before, after) == [
            "removed persistent/certs/ca.pem",
            "added persistent/certs/client.pem",
            "target ca.pem -> server.pem persistent/certs/link.pem",
            "changed bytes persistent/certs/privkey.pem",
            "mode 0440 -> 0600 persistent/certs/privkey.pem",
            "owner 0:0 -> 65534:65534 persistent/certs/privkey.pem",
            "kind file -> dir persistent/certs/server-ssh.pem",
        ]

    def test_detects_written_change(self, fs):
        """A mode change made on disk shows up when the tree is read again."""
        write_tree(_sample(), "/node")
        before = read_tree("/node")
        os.chmod("/node/persistent/certs/privkey.pem", 0o644)
        assert diff_trees(before, read_tree("/node")) == ["mode 0440 -> 0644 persistent/certs/privkey.pem"]
