"""Fetching raw files: explicit folder, mirror, URL (a loopback HTTP server), checksums, and the offline error."""

import functools
import hashlib
import http.server
import threading

import pytest

from autoperi.data.sources import DataUnavailable, RawFile, fetch_raw, raw_files, sha256_of

PAYLOADS = {"a/one.csv": b"x,y\n1,2\n", "b/two.json": b'{"k": 1}\n'}


def _spec(path, url=None, payload=None):
    payload = PAYLOADS[path] if payload is None else payload
    return RawFile(path, hashlib.sha256(payload).hexdigest(), len(payload), url, "test fixture")


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (an ephemeral port) for the duration of a test."""
    root = tmp_path / "www"
    for path, payload in PAYLOADS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(payload)
    (root / "corrupt.csv").write_bytes(b"tampered\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_from_url_with_checksum(server, tmp_path):
    files = [_spec(p, f"{server}/{p}") for p in PAYLOADS]
    origins = fetch_raw(tmp_path / "raw", files=files)
    assert all(o.startswith("url:") for o in origins.values())
    for f in files:
        assert sha256_of(tmp_path / "raw" / f.path) == f.sha256
    assert fetch_raw(tmp_path / "raw", files=files) == {f.path: "present" for f in files}


def test_checksum_mismatch_is_refused_and_named(server, tmp_path):
    bad = _spec("a/one.csv", f"{server}/corrupt.csv")
    with pytest.raises(DataUnavailable) as info:
        fetch_raw(tmp_path / "raw", files=[bad])
    assert "a/one.csv" in str(info.value) and "sha256" in str(info.value)
    assert not (tmp_path / "raw" / "a/one.csv").exists()


def test_explicit_folder_then_mirror_then_url(server, tmp_path):
    explicit, mirror = tmp_path / "explicit", tmp_path / "mirror"
    (explicit / "a").mkdir(parents=True)
    (explicit / "a/one.csv").write_bytes(PAYLOADS["a/one.csv"])
    (mirror / "a").mkdir(parents=True)
    (mirror / "a/one.csv").write_bytes(b"corrupt copy\n")  # skipped: wrong checksum
    (mirror / "b").mkdir(parents=True)
    (mirror / "b/two.json").write_bytes(PAYLOADS["b/two.json"])
    files = [_spec(p, f"{server}/{p}") for p in PAYLOADS]
    origins = fetch_raw(tmp_path / "raw", explicit=explicit, mirror=mirror, files=files)
    assert origins["a/one.csv"].startswith("explicit:")
    assert origins["b/two.json"].startswith("mirror:")


def test_corrupt_local_file_is_replaced(server, tmp_path):
    files = [_spec("a/one.csv", f"{server}/a/one.csv")]
    (tmp_path / "raw/a").mkdir(parents=True)
    (tmp_path / "raw/a/one.csv").write_bytes(b"x,y\n9,9\n")  # same size, other content
    assert fetch_raw(tmp_path / "raw", files=files)["a/one.csv"].startswith("url:")
    assert (tmp_path / "raw/a/one.csv").read_bytes() == PAYLOADS["a/one.csv"]


def test_offline_without_mirror_names_every_missing_file(tmp_path):
    files = [_spec("a/one.csv", "http://127.0.0.1:9/none"), _spec("b/two.json", None)]
    with pytest.raises(DataUnavailable) as info:
        fetch_raw(tmp_path / "raw", mirror=tmp_path / "no-mirror", files=files, timeout_s=2)
    text = str(info.value)
    assert "2 raw file(s)" in text and "a/one.csv" in text and "b/two.json" in text
    assert "--source" in text


def test_registry_checksums_match_the_fetched_raw_folder(raw_dir):
    for f in raw_files():
        path = raw_dir / f.path
        assert path.stat().st_size == f.bytes, f.path
        assert sha256_of(path) == f.sha256, f.path


def test_online_only_files_record_their_checksum_at_first_download(server, tmp_path, monkeypatch):
    import yaml

    from autoperi.data import sources

    doc = {"files": [], "online_only": [{"path": "a/one.csv", "url": f"{server}/a/one.csv"}]}

    class FakeFiles:
        def joinpath(self, name):
            return self

        def read_text(self):
            return yaml.safe_dump(doc)

    monkeypatch.setattr(sources.resources, "files", lambda package: FakeFiles())
    first = sources.fetch_online_only(tmp_path / "ext")
    assert first == {"a/one.csv": hashlib.sha256(PAYLOADS["a/one.csv"]).hexdigest()}
    doc["online_only"][0]["url"] = f"{server}/corrupt.csv"  # upstream changed: refused against the record
    with pytest.raises(DataUnavailable, match="recorded at first download"):
        sources.fetch_online_only(tmp_path / "ext")
