"""Corpus downloads: resumable, checksum-verified, safely extracted.

``fetch`` continues a partial download (``NAME.part``) with an HTTP Range request,
then verifies the archive's published digest (sha256 or md5) before the archive gets
its final name; a mismatch is an error naming the file and both digests, and nothing
is extracted. ``extract`` checks every member of a tar or zip archive first and
refuses absolute paths, ``..`` components, links that point outside the target
folder and device files, and reads the archive through, so a cut-off download that no
checksum guards (FSDD, AN4) is caught before anything is unpacked; it unpacks into a
temporary folder and moves the result into place when complete, then leaves a marker, so it
happens once and never half.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asr.errors import AsrError, reason

CHUNK = 1 << 20  # bytes per read


@dataclass(frozen=True)
class Archive:
    url: str
    digest: str  # "sha256:HEX" or "md5:HEX", as published for the archive; "" when none is published

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, digest: str) -> None:
    """Raise unless ``path`` has ``digest`` ("sha256:HEX" / "md5:HEX"; "" checks nothing)."""
    if not digest:
        return
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise AsrError(f"{path}: unsupported checksum {digest!r} (expected sha256:HEX or md5:HEX)")
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise AsrError(f"{path}: {algorithm} checksum mismatch: expected {expected.lower()}, got {actual}; "
                       "the file is kept as .bad and nothing was extracted (rerun to download again)")


def fetch(archive: Archive, download_dir: Path, timeout: float = 60) -> Path:
    """Download ``archive`` into ``download_dir`` (resuming a partial file) and verify it; returns its path."""
    target = Path(download_dir) / archive.name
    if target.is_file():  # downloaded before, or put there by hand: checked all the same
        _verify_or_set_aside(target, target, archive.digest)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    expected = None  # the complete file's size, when the server says
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            length = response.headers.get("Content-Length")
            if length and length.isdigit():
                expected = int(length) + (have if resumed else 0)
            print(f"downloading {archive.url}" + (f" (resuming at {have:,} bytes)" if resumed else "")
                  + (f", {int(length) / 1e6:,.0f} MB" if length and length.isdigit() else ""), file=sys.stderr)
            with open(partial, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(response, f, CHUNK)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete
            pass
        else:
            raise AsrError(f"{archive.url}: download failed (HTTP {e.code} {e.reason})") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise AsrError(f"{partial}: disk full while downloading {archive.url}; free space and rerun "
                           "(the download resumes where it stopped)") from None
        if not isinstance(e, urllib.error.URLError) and not isinstance(e, (ConnectionError, TimeoutError)):
            raise AsrError(f"{partial}: cannot write the download ({e.strerror or e})") from None
        cause = getattr(e, "reason", e)
        raise AsrError(f"{archive.url}: cannot download ({cause}); no network? Download it elsewhere and pass "
                       f"--data-dir, or put the archive at {target}") from None
    except http.client.HTTPException as e:  # the connection broke mid-body
        raise AsrError(f"{archive.url}: download broke off ({type(e).__name__}) at {partial.stat().st_size:,} "
                       "bytes; rerun to resume") from None
    got = partial.stat().st_size
    if expected is not None and got != expected:  # a connection that closed early reads as a short file
        raise AsrError(f"{archive.url}: download ended early ({got:,} of {expected:,} bytes); rerun to resume "
                       f"from {partial}")
    _verify_or_set_aside(partial, target, archive.digest)
    os.replace(partial, target)
    return target


def _verify_or_set_aside(path: Path, target: Path, digest: str) -> None:
    """Verify ``path``; on a mismatch it becomes TARGET.bad (so the next run downloads afresh)."""
    try:
        verify(path, digest)
    except AsrError:
        os.replace(path, target.with_name(target.name + ".bad"))
        raise


def _check_member(name: str, link: str | None, is_symlink: bool, root: Path, archive: Path) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise AsrError(f"{archive}: refusing member with an absolute path: {name}")
    if ".." in path.parts:
        raise AsrError(f"{archive}: refusing member with a '..' component: {name}")
    if link is not None:
        base = (root / path).parent if is_symlink else root  # hard links name a member from the root
        if PurePosixPath(link).is_absolute() or not (base / link).resolve().is_relative_to(root.resolve()):
            raise AsrError(f"{archive}: refusing link that points outside the target folder: {name} -> {link}")


class IncompleteArchive(AsrError):
    """The archive cannot be read through: cut off, or damaged."""


MAX_RATIO = 200  # an archive that unpacks to more than this many times its size is refused (a bomb)


def check_archive(archive: Path, root: Path, max_bytes: float | None = None) -> None:
    """Read ``archive`` through and raise if it is incomplete or damaged (a cut-off download
    with no checksum to catch it), if any member would land outside ``root``, or if it would
    unpack to more than ``max_bytes`` (default: ``MAX_RATIO`` times its own size). Nothing is written."""
    archive = Path(archive)
    limit = max_bytes if max_bytes is not None else MAX_RATIO * max(archive.stat().st_size, 1 << 20)
    total = 0
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()  # every member's CRC: the whole archive is read
                if bad is not None:
                    raise zipfile.BadZipFile(f"member {bad} is damaged")
                for info in z.infolist():
                    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                    _check_member(info.filename, z.read(info).decode() if is_link else None, True, root, archive)
                    total += info.file_size
        else:
            with tarfile.open(archive) as tar:
                for member in tar:  # iterating decompresses the whole stream, so a cut-off one fails here
                    if member.isdev() or member.isfifo():
                        raise AsrError(f"{archive}: refusing device or pipe member: {member.name}")
                    link = member.linkname if (member.issym() or member.islnk()) else None
                    _check_member(member.name, link, member.issym(), root, archive)
                    total += member.size
                    if total > limit:
                        break
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise IncompleteArchive(f"{archive}: incomplete or damaged archive ({reason(e, 120)})") from None
    if total > limit:
        raise AsrError(f"{archive}: unpacks to more than {limit / 1e9:.1f} GB ({MAX_RATIO}x its size); refusing "
                       "it as a possible archive bomb")


def _extracted_marker(root: Path, archive_name: str) -> Path:
    return root / f".extracted-{archive_name}"


def extract(archive: Path, root: Path) -> Path:
    """Unpack ``archive`` into ``root`` once (a marker records it); returns ``root``. The archive
    is checked through first, then unpacked into a temporary folder inside ``root`` whose
    contents are moved into place only when it is complete: an interrupted extraction leaves
    no partial corpus that a rerun would take for the whole."""
    root = Path(root)
    marker = _extracted_marker(root, Path(archive).name)
    if marker.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    check_archive(Path(archive), root)
    print(f"extracting {archive} into {root}", file=sys.stderr)
    staging = root / f".extracting-{Path(archive).name}"
    shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data" if hasattr(tarfile, "data_filter") else None)
        _move_into(staging, root)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise AsrError(f"{root}: disk full while extracting {archive}; free space and rerun") from None
        raise AsrError(f"{archive}: extraction failed ({reason(e, 120)}); nothing was kept") from None
    shutil.rmtree(staging, ignore_errors=True)
    marker.touch()
    return root


def _move_into(source: Path, target: Path) -> None:
    """Move the tree ``source`` into ``target``, merging folders (archives of one corpus share a
    top folder, e.g. LibriSpeech/) and replacing files that are already there."""
    for entry in source.iterdir():
        there = target / entry.name
        if entry.is_dir() and not entry.is_symlink() and there.is_dir() and not there.is_symlink():
            _move_into(entry, there)
            continue
        if there.is_dir() and not there.is_symlink():
            shutil.rmtree(there)
        elif there.exists() or there.is_symlink():
            there.unlink()
        os.replace(entry, there)


def fetch_and_extract(archive: Archive, download_dir: Path, root: Path | None = None) -> Path:
    """Download, verify and unpack into ``root`` (default: ``download_dir``), once. A downloaded
    archive that turns out incomplete is set aside as .bad, so that a rerun downloads it again."""
    root = Path(root or download_dir)
    if _extracted_marker(root, archive.name).is_file():
        return root
    path = fetch(archive, download_dir)
    try:
        return extract(path, root)
    except IncompleteArchive as e:
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        raise AsrError(f"{e}; set aside as {bad.name}: rerun to download it again") from None
