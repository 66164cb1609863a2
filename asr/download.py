"""Corpus downloads: resumable, checksum-verified, safely extracted.

``fetch`` continues a partial download (``NAME.part``) with an HTTP Range request,
then verifies the archive's published digest (sha256 or md5) before the archive gets
its final name; a mismatch is an error naming the file and both digests, and nothing
is extracted. ``extract`` checks every member of a tar or zip archive first and
refuses absolute paths, ``..`` components, links that point outside the target
folder and device files; a finished extraction leaves a marker, so it happens once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asr.errors import AsrError

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
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            total = response.headers.get("Content-Length")
            print(f"downloading {archive.url}" + (f" (resuming at {have:,} bytes)" if resumed else "")
                  + (f", {int(total) / 1e6:,.0f} MB" if total else ""), file=sys.stderr)
            with open(partial, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(response, f, CHUNK)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete
            pass
        else:
            raise AsrError(f"{archive.url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AsrError(f"{archive.url}: cannot download ({reason}); no network? Download it elsewhere and pass "
                       f"--data-dir, or put the archive at {target}") from None
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


def check_archive(archive: Path, root: Path) -> None:
    """Raise if any member of ``archive`` would land outside ``root``; nothing is written."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                _check_member(info.filename, z.read(info).decode() if is_link else None, True, root, archive)
        return
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isdev() or member.isfifo():
                    raise AsrError(f"{archive}: refusing device or pipe member: {member.name}")
                link = member.linkname if (member.issym() or member.islnk()) else None
                _check_member(member.name, link, member.issym(), root, archive)
    except tarfile.TarError as e:
        raise AsrError(f"{archive}: not a readable tar or zip archive ({e})") from None


def _extracted_marker(root: Path, archive_name: str) -> Path:
    return root / f".extracted-{archive_name}"


def extract(archive: Path, root: Path) -> Path:
    """Unpack ``archive`` into ``root`` once (a marker records it); returns ``root``."""
    root = Path(root)
    marker = _extracted_marker(root, Path(archive).name)
    if marker.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    check_archive(Path(archive), root)
    print(f"extracting {archive} into {root}", file=sys.stderr)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data" if hasattr(tarfile, "data_filter") else None)
    marker.touch()
    return root


def fetch_and_extract(archive: Archive, download_dir: Path, root: Path | None = None) -> Path:
    """Download, verify and unpack into ``root`` (default: ``download_dir``), once."""
    root = Path(root or download_dir)
    if _extracted_marker(root, archive.name).is_file():
        return root
    return extract(fetch(archive, download_dir), root)
