"""Tests for fastlib.datasets: paths, Config, and untar_data's offline contract (no internet needed)."""
import hashlib
import http.server
import io
import shutil
import socket
import tarfile
import threading
import urllib.request
from pathlib import Path

import pytest

from fastlib import datasets
from fastlib.datasets import (URLs, ArchiveError, ChecksumError, Config, DownloadError, datapath4file, download_url,
                              untar_data, url2name, url2path)

MNIST_TINY_SHA256 = 'da45570ee31a9e5d2250df7ea18408752e987efd59dd153b03bfe97a5ac765cc'


# ------------------------------------------------------------------------------------------------------- helpers

def make_tgz(name: str, files: dict[str, bytes]) -> bytes:
    "A gzip tar holding `files` (relative path -> content) under the top folder `name`."
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(f'{name}/{path}' if name else path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def leftovers(folder):
    "Hidden temp files or folders (partial downloads or extractions) left in `folder`."
    return sorted(p.name for p in folder.iterdir() if p.name.startswith('.')) if folder.exists() else []


class Server:
    "A local HTTP server: `routes` maps a path to (body, declared Content-Length or None for the true one)."

    def __init__(self):
        self.routes, self.hits = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, declared = server.routes[self.path]
                self.send_response(200)
                self.send_header('Content-Type', 'application/x-tar')
                self.send_header('Content-Length', str(len(body) if declared is None else declared))
                self.end_headers()
                self.wfile.write(body)  # then the connection closes (HTTP/1.0), short of `declared` if larger
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(datasets, '_RETRY_WAIT', 0)  # retry at once: keeps failure tests fast
    for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    monkeypatch.delenv('FASTLIB_ARCHIVE', raising=False)  # every byte must come from the server
    srv = Server()
    yield srv
    srv.close()


TINY = {'a.txt': b'alpha\n', 'sub/b.txt': b'beta\n'}


@pytest.fixture
def no_network(monkeypatch):
    "Make any attempt to open a URL fail the test."
    def refuse(*args, **kwargs):
        raise AssertionError('untar_data tried to use the network')
    monkeypatch.setattr(urllib.request, 'urlopen', refuse)


# ------------------------------------------------------------------------------------------------ names and paths

def test_urls_constants():
    assert URLs.MNIST_TINY == 'https://s3.amazonaws.com/fast-ai-sample/mnist_tiny'
    assert URLs.S3 == 'https://s3.amazonaws.com/fast-ai-'
    assert URLs.IMDB == 'https://s3.amazonaws.com/fast-ai-nlp/imdb'
    assert URLs.PETS == 'https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet'
    assert URLs.CAMVID == 'https://s3.amazonaws.com/fast-ai-imagelocal/camvid'
    names = [k for k in vars(URLs) if k.isupper() and not k.startswith('S3') and k not in ('URL', 'MDL')]
    for k in names:
        value = getattr(URLs, k)
        if k != 'LOCAL_PATH':
            assert value.startswith('http') and not value.endswith('.tgz'), k
    assert url2name(URLs.CIFAR10_SMALL) == 'cifar10_small' and url2name(URLs.ADULT_UCI) == 'adult_uci'
    assert '.invalid/' in URLs.CIFAR10_SMALL  # placeholder host: never resolves


def test_url2name_url2path():
    assert url2name(URLs.MNIST_TINY) == 'mnist_tiny'
    assert url2name('http://x.org/a/b/') == 'b'
    assert url2path(URLs.MNIST_TINY) == Config.data_path() / 'mnist_tiny'
    assert url2path(URLs.WT103_FWD, data=False) == Config.model_path() / 'wt103-fwd'
    assert datapath4file('mnist_tiny.tgz') == Config.data_archive_path() / 'mnist_tiny.tgz'
    assert datapath4file('mnist_tiny', archive=False) == Config.data_path() / 'mnist_tiny'


def test_datapath4file_prefers_local_data_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(URLs, 'LOCAL_PATH', tmp_path)
    assert datapath4file('mine') == Config.data_archive_path() / 'mine'
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'mine.tgz').write_bytes(b'')
    assert datapath4file('mine') == tmp_path / 'data' / 'mine'


# -------------------------------------------------------------------------------------------------------- Config

def test_config_follows_fastlib_home(tmp_path, monkeypatch):
    for home in (tmp_path / 'a', tmp_path / 'b'):
        monkeypatch.setenv('FASTLIB_HOME', str(home))
        assert Config.data_path() == home / 'data'
        assert Config.data_archive_path() == home / 'archive'
        assert Config.model_path() == home / 'models'
        assert Config.DEFAULT_CONFIG_PATH == str(home / 'config.yml')
        assert (home / 'config.yml').is_file()  # written on first use
    assert url2path(URLs.MNIST_TINY) == tmp_path / 'b' / 'data' / 'mnist_tiny'


def test_config_file_is_read(tmp_path, monkeypatch):
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('FASTLIB_HOME', str(home))
    (home / 'config.yml').write_text('# my settings\n\ndata_path: ~/somewhere  # a comment\n'
                                     'model_path: "rel/models"\nextra: a: b\n')
    assert Config.data_path() == Path.home() / 'somewhere'
    assert Config.model_path() == home / 'rel' / 'models'  # relative: taken from the home folder
    assert Config.data_archive_path() == home / 'archive'  # missing key: default
    assert Config.get_key('extra') == 'a: b'
    assert Config.get_key('nope') is None
    with pytest.raises(KeyError, match='data_path'):
        Config.get_path('data_pth')
    (home / 'config.yml').write_text('not a pair\n')
    with pytest.raises(ValueError, match='line 1'):
        Config.get()


def test_config_get_and_create(tmp_path):
    fpath = tmp_path / 'other' / 'config.yml'
    with pytest.raises(FileNotFoundError):
        Config.get(fpath, create_missing=False)
    assert Config.get(fpath) == Config.DEFAULT_CONFIG
    fpath.write_text('data_path: /custom\n')
    Config.create(fpath)  # exists already: left alone
    assert Config.get(fpath) == {'data_path': '/custom'}


# ---------------------------------------------------------------------------------------------- untar_data offline

def test_untar_packaged_copy_without_env_or_network(monkeypatch, no_network):
    monkeypatch.delenv('FASTLIB_ARCHIVE', raising=False)
    packaged = datasets.PACKAGE_DATA / 'mnist_tiny.tgz'
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == MNIST_TINY_SHA256
    path = untar_data(URLs.MNIST_TINY)
    assert path == Config.data_path() / 'mnist_tiny'
    for sub in ('train/3', 'train/7', 'valid', 'test'):
        assert (path / sub).is_dir(), sub
    assert (path / 'labels.csv').is_file()
    assert len(list(path.rglob('*.png'))) == 1428
    assert not (Config.data_archive_path() / 'mnist_tiny.tgz').exists()  # extracted in place, never copied
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == MNIST_TINY_SHA256
    assert leftovers(Config.data_path()) == []


def test_untar_from_archive_env_then_cache(shared_data, monkeypatch, no_network):
    path = untar_data(URLs.CAMVID_TINY)
    assert path == Config.data_path() / 'camvid_tiny'
    assert (path / 'codes.txt').is_file() and (path / 'images').is_dir() and (path / 'labels').is_dir()
    assert not Config.data_archive_path().exists() or not any(Config.data_archive_path().iterdir())
    marker = path / 'marker.txt'
    marker.write_text('still here')

    def no_extraction(*args, **kwargs):
        raise AssertionError('re-extracted a cached folder')
    monkeypatch.setattr(datasets.tarfile, 'open', no_extraction)
    assert untar_data(URLs.CAMVID_TINY) == path
    assert marker.read_text() == 'still here'


def test_untar_fastlib_local_data_set(shared_data, no_network):
    path = untar_data(URLs.ADULT_UCI)
    assert sorted(p.name for p in path.iterdir()) == ['adult.data', 'adult.test']


def test_fastlib_local_data_set_without_archive(monkeypatch, no_network):
    monkeypatch.delenv('FASTLIB_ARCHIVE', raising=False)
    with pytest.raises(DownloadError, match='only through FASTLIB_ARCHIVE') as err:
        untar_data(URLs.CIFAR10_SMALL)
    assert 'cifar10_small.tgz' in str(err.value) and str(Config.data_archive_path()) in str(err.value)


def test_force_download_reextracts(shared_data):
    path = untar_data(URLs.ADULT_UCI)
    (path / 'marker.txt').write_text('old')
    (path / 'adult.test').unlink()
    assert untar_data(URLs.ADULT_UCI) == path and not (path / 'adult.test').exists()  # cached, damage and all
    assert untar_data(URLs.ADULT_UCI, force_download=True) == path
    assert sorted(p.name for p in path.iterdir()) == ['adult.data', 'adult.test']
    assert leftovers(Config.data_path()) == []


def test_dest_is_the_parent_folder(tmp_path, monkeypatch, no_network):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / 'tiny_ds.tgz').write_bytes(make_tgz('tiny_ds', TINY))
    monkeypatch.setenv('FASTLIB_ARCHIVE', str(mirror))
    path = untar_data('https://example.invalid/tiny_ds', dest=tmp_path / 'elsewhere')
    assert path == tmp_path / 'elsewhere' / 'tiny_ds'
    assert (path / 'a.txt').read_bytes() == b'alpha\n'
    assert not (Config.data_path() / 'tiny_ds').exists()


def test_bad_archive_in_mirror_leaves_no_half_folder(tmp_path, monkeypatch, no_network):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    monkeypatch.setenv('FASTLIB_ARCHIVE', str(mirror))
    good = make_tgz('tiny_ds', {f'f{i}.bin': bytes(range(256)) * 64 for i in range(20)})
    (mirror / 'tiny_ds.tgz').write_bytes(good[:len(good) // 2])  # truncated: extraction fails half way
    url = 'https://example.invalid/tiny_ds'
    with pytest.raises(ArchiveError, match='tiny_ds.tgz'):
        untar_data(url)
    assert not (Config.data_path() / 'tiny_ds').exists()
    assert leftovers(Config.data_path()) == []
    (mirror / 'tiny_ds.tgz').write_bytes(good)  # a later call must not take anything for finished
    path = untar_data(url)
    assert len(list(path.iterdir())) == 20
    assert (mirror / 'tiny_ds.tgz').read_bytes() == good  # the mirror is never written to


@pytest.mark.parametrize('filters', [True, False], ids=['tarfile-filter', 'old-python'])
def test_path_traversal_is_refused(tmp_path, monkeypatch, no_network, filters):
    if not filters:  # Pythons before 3.10.12 / 3.11.4 lack tarfile's extraction filters: the fallback must refuse too
        monkeypatch.delattr(tarfile, 'data_filter', raising=False)
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    monkeypatch.setenv('FASTLIB_ARCHIVE', str(mirror))
    (mirror / 'evil.tgz').write_bytes(make_tgz('', {'evil/ok.txt': b'ok', '../../escaped.txt': b'bad'}))
    with pytest.raises(ArchiveError, match='outside the destination'):
        untar_data('https://example.invalid/evil')
    assert not list(tmp_path.rglob('escaped.txt')) and not list(Config.data_path().parent.parent.rglob('escaped.txt'))
    assert not (Config.data_path() / 'evil').exists() and leftovers(Config.data_path()) == []
    with tarfile.open(mirror / 'link.tgz', 'w:gz') as tar:
        info = tarfile.TarInfo('link/out')
        info.type, info.linkname = tarfile.SYMTYPE, '../../..'
        tar.addfile(info)
    with pytest.raises(ArchiveError, match='outside the destination'):
        untar_data('https://example.invalid/link')
    (mirror / 'fine.tgz').write_bytes(make_tgz('fine', TINY))
    assert (untar_data('https://example.invalid/fine') / 'sub' / 'b.txt').read_bytes() == b'beta\n'


def test_mirror_checksum_mismatch(tmp_path, monkeypatch, no_network):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    monkeypatch.setenv('FASTLIB_ARCHIVE', str(mirror))
    (mirror / 'mnist_tiny.tgz').write_bytes(make_tgz('mnist_tiny', TINY))  # not the real mnist_tiny
    with pytest.raises(ChecksumError) as err:
        untar_data(URLs.MNIST_TINY)
    assert MNIST_TINY_SHA256 in str(err.value) and 'FASTLIB_ARCHIVE' in str(err.value)
    assert not (Config.data_path() / 'mnist_tiny').exists()


# ---------------------------------------------------------------------------------------------------- downloads

def test_download_success_then_cache(server):
    body = make_tgz('tiny_ds', TINY)
    server.routes['/tiny_ds.tgz'] = (body, None)
    url = f'{server.base}/tiny_ds'
    path = untar_data(url)
    assert path == Config.data_path() / 'tiny_ds'
    assert (path / 'a.txt').read_bytes() == b'alpha\n' and (path / 'sub' / 'b.txt').read_bytes() == b'beta\n'
    archive = Config.data_archive_path() / 'tiny_ds.tgz'
    assert archive.read_bytes() == body
    assert leftovers(Config.data_archive_path()) == [] and leftovers(Config.data_path()) == []
    assert untar_data(url) == path and server.hits['/tiny_ds.tgz'] == 1  # extracted folder: cache
    shutil.rmtree(path)
    assert untar_data(url) == path and server.hits['/tiny_ds.tgz'] == 1  # archive: cache
    assert (path / 'a.txt').is_file()


def test_download_shows_progress(server, tmp_path, monkeypatch):
    calls = []
    real = datasets.progress_bar

    def spy(gen, total=None, **kwargs):
        calls.append(total)
        return real(gen, total=total, **kwargs)
    monkeypatch.setattr(datasets, 'progress_bar', spy)
    body = make_tgz('tiny_ds', TINY)
    server.routes['/tiny_ds.tgz'] = (body, None)
    assert download_url(f'{server.base}/tiny_ds.tgz', tmp_path / 'x.tgz').read_bytes() == body
    assert calls == [len(body)]
    download_url(f'{server.base}/tiny_ds.tgz', tmp_path / 'y.tgz', show_progress=False)
    assert calls == [len(body)]


def test_force_download_refetches(server):
    server.routes['/tiny_ds.tgz'] = (make_tgz('tiny_ds', TINY), None)
    url = f'{server.base}/tiny_ds'
    path = untar_data(url)
    server.routes['/tiny_ds.tgz'] = (make_tgz('tiny_ds', {'new.txt': b'v2'}), None)
    assert untar_data(url) == path and not (path / 'new.txt').exists()
    assert untar_data(url, force_download=True) == path
    assert server.hits['/tiny_ds.tgz'] == 2
    assert sorted(p.name for p in path.iterdir()) == ['new.txt']


def test_archive_env_is_used_before_download(server, tmp_path, monkeypatch):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / 'tiny_ds.tgz').write_bytes(make_tgz('tiny_ds', TINY))
    monkeypatch.setenv('FASTLIB_ARCHIVE', str(mirror))
    url = f'{server.base}/tiny_ds'
    path = untar_data(url)
    assert untar_data(url, force_download=True) == path  # the mirror still counts as the source
    assert server.hits == {} and (path / 'a.txt').is_file()
    assert not (Config.data_archive_path() / 'tiny_ds.tgz').exists()


def test_truncated_download(server):
    body = make_tgz('tiny_ds', TINY)
    server.routes['/tiny_ds.tgz'] = (body, len(body) * 2)  # announces more than it sends
    with pytest.raises(DownloadError) as err:
        untar_data(f'{server.base}/tiny_ds')
    msg = str(err.value)
    assert f'{len(body):,} of the {2 * len(body):,} bytes' in msg and 'FASTLIB_ARCHIVE' in msg
    assert server.hits['/tiny_ds.tgz'] == 6  # one try and five retries
    assert not (Config.data_archive_path() / 'tiny_ds.tgz').exists() and leftovers(Config.data_archive_path()) == []
    assert not (Config.data_path() / 'tiny_ds').exists()


def test_corrupt_download(server):
    server.routes['/tiny_ds.tgz'] = (b'<html>Sorry, this is not an archive</html>', None)
    with pytest.raises(ArchiveError, match='not a complete gzip'):
        untar_data(f'{server.base}/tiny_ds')
    assert server.hits['/tiny_ds.tgz'] == 1
    assert not (Config.data_archive_path() / 'tiny_ds.tgz').exists() and leftovers(Config.data_archive_path()) == []
    assert not (Config.data_path() / 'tiny_ds').exists()


def test_checksum_mismatch(server, monkeypatch):
    body = make_tgz('tiny_ds', TINY)
    server.routes['/tiny_ds.tgz'] = (body, None)
    url = f'{server.base}/tiny_ds'
    monkeypatch.setitem(datasets._checks, f'{url}.tgz', (('sha256', len(body), 'ab' * 32),))
    with pytest.raises(ChecksumError) as err:
        untar_data(url)
    msg = str(err.value)
    assert url in msg and 'ab' * 32 in msg and hashlib.sha256(body).hexdigest() in msg and 'FASTLIB_ARCHIVE' in msg
    assert not (Config.data_archive_path() / 'tiny_ds.tgz').exists() and leftovers(Config.data_archive_path()) == []
    assert not (Config.data_path() / 'tiny_ds').exists()
    monkeypatch.setitem(datasets._checks, f'{url}.tgz', (('sha256', len(body), hashlib.sha256(body).hexdigest()),))
    assert (untar_data(url) / 'a.txt').is_file()


def test_bad_cached_archive_is_fetched_again(server, monkeypatch):
    body = make_tgz('tiny_ds', TINY)
    server.routes['/tiny_ds.tgz'] = (body, None)
    url = f'{server.base}/tiny_ds'
    monkeypatch.setitem(datasets._checks, f'{url}.tgz', (('sha256', len(body), hashlib.sha256(body).hexdigest()),))
    cached = Config.data_archive_path() / 'tiny_ds.tgz'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(make_tgz('tiny_ds', {'stale.txt': b'old'}))
    path = untar_data(url)
    assert server.hits['/tiny_ds.tgz'] == 1 and cached.read_bytes() == body
    assert (path / 'a.txt').is_file() and not (path / 'stale.txt').exists()


def test_http_error_is_not_retried(server):
    with pytest.raises(DownloadError, match='404') as err:
        untar_data(f'{server.base}/missing_ds')
    assert server.hits['/missing_ds.tgz'] == 1 and 'missing_ds.tgz' in str(err.value)


def test_unreachable_server_gives_offline_instructions(monkeypatch):
    monkeypatch.setattr(datasets, '_RETRY_WAIT', 0)
    monkeypatch.delenv('FASTLIB_ARCHIVE', raising=False)
    with socket.socket() as s:  # a port nobody listens on: bind it, then let it go
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        untar_data(f'http://127.0.0.1:{port}/nowhere_ds')
    msg = str(err.value)
    assert 'nowhere_ds.tgz' in msg and 'FASTLIB_ARCHIVE' in msg and str(Config.data_archive_path()) in msg
    assert not (Config.data_path() / 'nowhere_ds').exists() and leftovers(Config.data_archive_path()) == []
