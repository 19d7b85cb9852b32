"""POSIX ACLs: who besides the mode bits can read a file, and how to take an ACL off one.

Linux keeps a file's access ACL in the extended attribute
``system.posix_acl_access`` and a directory's default ACL (inherited by every
file created in it) in ``system.posix_acl_default``, both in one binary form:
a little-endian ``u32`` version (2), then 8-byte entries ``u16 tag, u16 perm,
u32 id``.  :func:`parse` reads that form in one linear pass and never raises:
bytes it cannot read give an :class:`Acl` with an ``error``, a finding for the
checks.  :func:`read_acl` and :func:`clear_acls` are the only I/O here.
"""

from __future__ import annotations

import errno
import struct

import attrs

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"

VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
READ, WRITE, EXECUTE = 4, 2, 1
TAG_NAMES = {USER_OBJ: "user", USER: "user", GROUP_OBJ: "group", GROUP: "group", MASK: "mask", OTHER: "other"}

# The kernel's own limit on an extended attribute's value (XATTR_SIZE_MAX): 8191 entries.
MAX_ACL_BYTES = 65536

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
# The errors meaning "no ACL here": none set, or a file system without ACLs.
NO_ACL = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})


@attrs.frozen
class AclEntry:
    """One entry: its tag (``USER_OBJ``...), permission bits (r=4 w=2 x=1) and, for a named entry, the id."""

    tag: int
    perm: int
    id: int | None = None  # USER and GROUP only

    @property
    def named(self) -> bool:
        return self.tag in (USER, GROUP)

    @property
    def spec(self) -> str:
        """The entry's qualifier as ``setfacl -x`` takes it: ``u:65534``, ``g:4242``."""
        return f"{'u' if self.tag == USER else 'g'}:{self.id}"

    @property
    def who(self) -> str:
        """The entry's qualifier in words: ``user 65534``, ``group 4242``."""
        return f"{TAG_NAMES[self.tag]} {self.id}"

    def as_text(self) -> str:
        """The entry as ``getfacl`` prints it: ``user:65534:r--``."""
        perms = "".join(c if self.perm & bit else "-" for c, bit in (("r", READ), ("w", WRITE), ("x", EXECUTE)))
        return f"{TAG_NAMES[self.tag]}:{'' if self.id is None else self.id}:{perms}"


@attrs.frozen
class Acl:
    """An ACL as read: its entries in stored order, or the ``error`` that made the bytes unreadable."""

    entries: tuple[AclEntry, ...] = ()
    error: str | None = None

    @property
    def mask(self) -> int | None:
        """The mask entry's bits: the most any named entry or the owning group gets; None without one."""
        for entry in self.entries:
            if entry.tag == MASK:
                return entry.perm
        return None

    def readers(self, *, masked: bool = True) -> tuple[AclEntry, ...]:
        """The named users and groups that can read: ``perm & mask`` grants r (``perm`` alone without a mask).

        ``masked=False`` ignores the mask: right for a default ACL, whose mask a
        file created under it loses at its first ``chmod`` (which sets the mask
        to the group bits and so switches an inherited named entry on).
        """
        mask = self.mask if masked else None
        mask = READ | WRITE | EXECUTE if mask is None else mask
        return tuple(e for e in self.entries if e.named and e.perm & mask & READ)

    def as_text(self) -> str:
        """The ACL in ``getfacl``'s short form, ``user::rw-,user:65534:r--,...``; for an unreadable one its error."""
        if self.error is not None:
            return f"unparseable: {self.error}"
        return ",".join(e.as_text() for e in self.entries)

    def identity(self) -> str:
        """What the plan fingerprint records of this ACL."""
        return self.as_text()


def parse(blob: bytes) -> Acl:
    """The ACL held by the xattr value ``blob``; never raises (an unreadable value is an ``Acl`` with an ``error``)."""
    if len(blob) > MAX_ACL_BYTES:
        return Acl(error=f"{len(blob)} bytes, over the limit of {MAX_ACL_BYTES}")
    if len(blob) < _HEADER.size:
        return Acl(error=f"{len(blob)} bytes, too short for the header")
    (version,) = _HEADER.unpack_from(blob)
    if version != VERSION:
        return Acl(error=f"version {version}, not {VERSION}")
    body = memoryview(blob)[_HEADER.size :]
    if len(body) % _ENTRY.size:
        return Acl(error=f"{len(body)} bytes of entries, not a multiple of {_ENTRY.size}")
    entries, masks = [], 0
    for tag, perm, ident in _ENTRY.iter_unpack(body):
        if tag not in TAG_NAMES:
            return Acl(error=f"unknown tag {tag:#x}")
        if perm & ~(READ | WRITE | EXECUTE):
            return Acl(error=f"permission bits {perm:#x} out of range")
        masks += tag == MASK
        entries.append(AclEntry(tag, perm, ident if tag in (USER, GROUP) else None))
    if masks > 1:  # which mask would apply is not known: say so rather than pick one
        return Acl(error="more than one mask entry")
    return Acl(tuple(entries))
