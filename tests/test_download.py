"""Downloads: resumed over HTTP Range, checksums refused before extraction, unsafe archives refused.

A small HTTP server on 127.0.0.1 (inside the test) stands in for the corpus host."""

import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile

import pytest

from asr.download import Archive, check_archive, extract, fetch, fetch_and_extract
from asr.errors import AsrError


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    ranges: list = []
    cut: dict = {}  # path -> bytes to send before closing the connection, whatever Content-Length says

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        self.ranges.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:start + self.cut.pop(self.path, len(body))])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    _Files.files, _Files.ranges, _Files.cut = {}, [], {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Files
    httpd.shutdown()


def _tar(members: dict[str, bytes], links: dict[str, tuple[str, bytes]] = {}) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (target, kind) in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_download_verifies_and_extracts(server, tmp_path):
    url, files = server
    body = _tar({"corpus/a.txt": b"hello", "corpus/sub/b.txt": b"world"})
    files.files["/corpus.tar.gz"] = body
    root = fetch_and_extract(Archive(url + "/corpus.tar.gz", sha256(body)), tmp_path)
    assert (root / "corpus" / "a.txt").read_bytes() == b"hello"
    assert (root / "corpus" / "sub" / "b.txt").read_bytes() == b"world"
    assert (tmp_path / "corpus.tar.gz").read_bytes() == body and not list(tmp_path.glob("*.part"))
    # done once: a second call neither downloads nor extracts again
    (root / "corpus" / "a.txt").write_bytes(b"changed")
    fetch_and_extract(Archive(url + "/corpus.tar.gz", sha256(body)), tmp_path)
    assert (root / "corpus" / "a.txt").read_bytes() == b"changed" and len(files.ranges) == 1


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    url, files = server
    body = bytes(range(256)) * 4000
    files.files["/big.tar.gz"] = body
    (tmp_path / "big.tar.gz.part").write_bytes(body[:300_000])  # what a killed download left
    md5 = "md5:" + hashlib.md5(body).hexdigest()
    path = fetch(Archive(url + "/big.tar.gz", md5), tmp_path)
    assert files.ranges == ["bytes=300000-"]
    assert path.read_bytes() == body
    # a partial file that is already complete: the server answers 416, the file is verified
    (tmp_path / "big.tar.gz").rename(tmp_path / "big2.tar.gz.part")
    files.files["/big2.tar.gz"] = body
    assert fetch(Archive(url + "/big2.tar.gz", md5), tmp_path).read_bytes() == body


def test_checksum_mismatch_names_both_digests_and_extracts_nothing(server, tmp_path):
    url, files = server
    body = _tar({"corpus/a.txt": b"hello"})
    files.files["/corpus.tar.gz"] = body
    wrong = "sha256:" + "0" * 64
    with pytest.raises(AsrError) as err:
        fetch_and_extract(Archive(url + "/corpus.tar.gz", wrong), tmp_path)
    message = str(err.value)
    assert "corpus.tar.gz" in message and "0" * 64 in message and hashlib.sha256(body).hexdigest() in message
    assert "\n" not in message
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "corpus.tar.gz").exists()
    assert (tmp_path / "corpus.tar.gz.bad").is_file()  # kept for inspection, never used
    # an archive put in place by hand is checked too
    (tmp_path / "corpus.tar.gz.bad").rename(tmp_path / "corpus.tar.gz")
    with pytest.raises(AsrError, match="checksum mismatch"):
        fetch_and_extract(Archive(url + "/corpus.tar.gz", wrong), tmp_path)
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "corpus.tar.gz").exists()
    assert fetch_and_extract(Archive(url + "/corpus.tar.gz", sha256(body)), tmp_path) == tmp_path  # downloaded anew
    assert (tmp_path / "corpus" / "a.txt").read_bytes() == b"hello"


def test_no_network_is_a_clear_message(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AsrError, match=r"cannot download .*no network\? .*--data-dir"):
        fetch(Archive(f"http://127.0.0.1:{port}/corpus.tar.gz", ""), tmp_path)


def test_missing_file_on_the_server_is_a_clear_message(server, tmp_path):
    url, _ = server
    with pytest.raises(AsrError, match=r"/nothing.tar.gz: download failed \(HTTP 404"):
        fetch(Archive(url + "/nothing.tar.gz", ""), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("members,links,why", [
    ({"../escaped.txt": b"x"}, {}, "'..' component"),
    ({"corpus/../../escaped.txt": b"x"}, {}, "'..' component"),
    ({"/tmp/absolute.txt": b"x"}, {}, "absolute path"),
    ({}, {"corpus/link": ("../../outside", tarfile.SYMTYPE)}, "link that points outside"),
    ({}, {"corpus/link": ("/etc/passwd", tarfile.SYMTYPE)}, "link that points outside"),
    ({}, {"corpus/hard": ("../outside", tarfile.LNKTYPE)}, "link that points outside"),
])
def test_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path, members, links, why):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar({"corpus/fine.txt": b"ok", **members}, links))
    target = tmp_path / "out"
    with pytest.raises(AsrError, match=why):
        extract(archive, target)
    assert not (target / "corpus").exists() and not (tmp_path / "escaped.txt").exists()


def test_links_inside_the_target_are_allowed(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(_tar({"corpus/a.txt": b"ok"}, {"corpus/link": ("a.txt", tarfile.SYMTYPE)}))
    root = extract(archive, tmp_path / "out")
    assert (root / "corpus" / "link").read_bytes() == b"ok"


def test_unsafe_zip_members_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("corpus/fine.txt", b"ok")
        z.writestr("../escaped.txt", b"x")
    with pytest.raises(AsrError, match="'..' component"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "corpus").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_damaged_archive_is_a_one_line_error(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(AsrError, match="broken.tar.gz: incomplete or damaged archive"):
        extract(archive, tmp_path / "out")


def test_a_connection_that_closes_early_is_not_taken_for_the_whole_file(server, tmp_path):
    url, files = server
    body = _tar({"corpus/a.txt": b"a" * 50000, "corpus/b.txt": bytes(range(256)) * 400})
    files.files["/c.tar.gz"] = body
    files.cut["/c.tar.gz"] = len(body) // 3  # no checksum pinned, as for FSDD and AN4
    with pytest.raises(AsrError, match=r"c.tar.gz: (download ended early|download broke off)"):
        fetch_and_extract(Archive(f"{url}/c.tar.gz", ""), tmp_path)
    assert not (tmp_path / "c.tar.gz").exists() and (tmp_path / "c.tar.gz.part").is_file()
    root = fetch_and_extract(Archive(f"{url}/c.tar.gz", ""), tmp_path)  # the rerun resumes
    assert files.ranges[-1] == f"bytes={len(body) // 3}-"
    assert (root / "corpus" / "b.txt").read_bytes() == bytes(range(256)) * 400


def test_a_cut_off_archive_without_checksum_is_set_aside_not_extracted(server, tmp_path):
    url, files = server
    body = _tar({"corpus/a.txt": bytes(range(256)) * 4000})
    files.files["/c.tar.gz"] = body[:len(body) // 2]  # the server itself has a cut-off copy
    with pytest.raises(AsrError, match=r"c.tar.gz: incomplete or damaged archive .*set aside as c.tar.gz.bad"):
        fetch_and_extract(Archive(f"{url}/c.tar.gz", ""), tmp_path)
    assert not (tmp_path / "corpus").exists() and (tmp_path / "c.tar.gz.bad").is_file()
    files.files["/c.tar.gz"] = body
    root = fetch_and_extract(Archive(f"{url}/c.tar.gz", ""), tmp_path)  # downloaded afresh
    assert (root / "corpus" / "a.txt").read_bytes() == bytes(range(256)) * 4000


def test_an_interrupted_extraction_leaves_no_partial_corpus(tmp_path, monkeypatch):
    import errno

    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(_tar({f"corpus/{i}.txt": b"x" * 100 for i in range(20)}))
    real = tarfile.TarFile.extractall

    def disk_full(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)  # every file written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", disk_full)
    with pytest.raises(AsrError, match="disk full while extracting"):
        extract(archive, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no corpus/, no marker, no staging folder
    monkeypatch.setattr(tarfile.TarFile, "extractall", real)
    assert len(list((extract(archive, tmp_path / "out") / "corpus").iterdir())) == 20


def test_what_tarfiles_own_filter_refuses_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch):
    import asr.download

    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(_tar({"corpus/a.txt": b"ok"}, {"corpus/z": ("../../outside", tarfile.SYMTYPE)}))
    monkeypatch.setattr(asr.download, "_check_member", lambda *args: None)  # as if our check missed it
    with pytest.raises(AsrError, match="c.tar.gz: extraction failed"):
        extract(archive, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_parts_of_one_corpus_merge_under_their_shared_folder(tmp_path):
    for part in ("dev", "test"):
        (tmp_path / f"{part}.tar.gz").write_bytes(_tar({f"Corpus/{part}/a.txt": part.encode()}))
        extract(tmp_path / f"{part}.tar.gz", tmp_path / "out")
    assert (tmp_path / "out/Corpus/dev/a.txt").read_bytes() == b"dev"
    assert (tmp_path / "out/Corpus/test/a.txt").read_bytes() == b"test"


def test_an_archive_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(_tar({"corpus/zeros": bytes(100_000)}))
    with pytest.raises(AsrError, match="possible archive bomb"):
        check_archive(archive, tmp_path / "out", max_bytes=50_000)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_fsdd_download_counts_its_recordings(server, tmp_path):
    """FSDD's archive is a branch snapshot with no published checksum: a copy that unpacks
    whole but lacks recordings is refused by count, and a complete one is taken."""
    from conftest import load_recipe

    fsdd = load_recipe("fsdd")
    url, files = server
    folder = "free-spoken-digit-dataset-master/recordings/"
    names = [f"{d}_{s}_{t}.wav" for d in range(10) for s in "abcdef" for t in range(50)]
    files.files["/part.zip"] = _zip({folder + n: b"RIFF" for n in names[:2999]} | {folder + "README": b"x"})
    files.files["/whole.zip"] = _zip({folder + n: b"RIFF" for n in names})
    with pytest.raises(AsrError, match=r"recordings: 2,999 recordings, expected 3,000 .*delete .*part and rerun"):
        fsdd.download(tmp_path / "part", url + "/part.zip")
    assert fsdd.download(tmp_path / "whole", url + "/whole.zip") == tmp_path / "whole" / folder.rstrip("/")


def test_an4_download_is_checked_for_every_utterance(server, tmp_path, monkeypatch, capsys):
    """AN4 has no published checksum: the extracted archive must hold all 948 + 130 utterances."""
    from conftest import load_recipe
    from test_corpora import _an4_fixture

    an4 = load_recipe("an4")
    url, files = server
    _an4_fixture(tmp_path / "corpus", raw=False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "corpus" / "an4", arcname="an4")
    files.files["/an4_sphere.tar.gz"] = buf.getvalue()
    monkeypatch.setattr(an4, "ARCHIVE", Archive(url + "/an4_sphere.tar.gz", ""))
    assert an4.main(["--download-dir", str(tmp_path / "dl"), "--download-only"]) == 1
    assert "an4: 5 train utterances, expected 948: an incomplete copy" in capsys.readouterr().err
    monkeypatch.setattr(an4, "UTTERANCES", {"train": 5, "test": 2})  # the fixture is all there is
    assert an4.main(["--download-dir", str(tmp_path / "dl"), "--download-only"]) == 0
