"""Data sets: their download addresses (`URLs`), where fastlib keeps them (`Config`) and `untar_data`.

`untar_data(url)` returns the extracted folder of the data set `url` names. The first call looks for the archive
`<name>.tgz` (name = the last part of `url`) in this order, and takes the first it finds:

1. the folder named by the environment variable FASTLIB_ARCHIVE: a read-only offline mirror, e.g. a shared folder
   on a machine with no internet;
2. `Config.data_archive_path()` (default `$FASTLIB_HOME/archive`): fastlib's own cache of earlier downloads;
3. `fastlib/data/` inside the installed package, which ships `mnist_tiny.tgz` so the quick start works anywhere;
4. otherwise it downloads `url + '.tgz'` into `Config.data_archive_path()`.

Archives in 1 and 3 are read where they lie, never copied or written to. An archive is checked against its known
checksum, then extracted into a hidden temporary folder next to the destination and renamed into place only when
complete, so an interrupted run never leaves a half folder that a later call would take for a finished one.
Later calls find the extracted folder and return it at once.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO

from .core import PathOrStr, atomic_write, did_you_mean, ifnone
from .progress import progress_bar

__all__ = ['URLs', 'Config', 'url2name', 'url2path', 'datapath4file', 'modelpath4file', 'download_url',
           'download_data', 'untar_data', 'DownloadError', 'ChecksumError', 'ArchiveError']

HOME_ENV = 'FASTLIB_HOME'        # folder of config.yml and, by default, of data, archives and models
ARCHIVE_ENV = 'FASTLIB_ARCHIVE'  # read-only folder of <name>.tgz archives, searched before any download
PACKAGE_DATA = Path(__file__).resolve().parent / 'data'  # archives shipped inside the package

_MIB = 1024 * 1024
_RETRY_WAIT = 0.5  # seconds; the n-th retry waits n times this (tests set it to 0)


class URLs:
    "Download addresses of the data sets and pretrained models, without the archive's '.tgz' suffix."
    LOCAL_PATH = Path.cwd()  # `datapath4file` prefers ./data/<name> here when it exists (fastai v1 behaviour)
    S3 = 'https://s3.amazonaws.com/fast-ai-'
    URL = f'{S3}sample/'
    MDL = 'http://files.fast.ai/models/'
    S3_IMAGE = f'{S3}imageclas/'
    S3_IMAGELOC = f'{S3}imagelocal/'
    S3_NLP = f'{S3}nlp/'
    S3_COCO = f'{S3}coco/'
    S3_MODEL = f'{S3}modelzoo/'
    # fastlib's own data sets have no public download address: they are available only through FASTLIB_ARCHIVE
    # (or Config.data_archive_path()). The '.invalid' top-level domain never resolves (RFC 2606), so a download
    # attempt fails at once with the offline instructions instead of reaching some stranger's server.
    FASTLIB_LOCAL = 'https://fastlib.invalid/data/'

    # small samples, good for tests and quick experiments
    ADULT_SAMPLE = f'{URL}adult_sample'
    BIWI_SAMPLE = f'{URL}biwi_sample'
    CIFAR = f'{URL}cifar10'
    COCO_SAMPLE = f'{S3_COCO}coco_sample'
    COCO_TINY = f'{URL}coco_tiny'
    HUMAN_NUMBERS = f'{URL}human_numbers'
    IMDB = f'{S3_NLP}imdb'
    IMDB_SAMPLE = f'{URL}imdb_sample'
    ML_SAMPLE = f'{URL}movie_lens_sample'
    ML_100k = 'http://files.grouplens.org/datasets/movielens/ml-100k'
    MNIST_SAMPLE = f'{URL}mnist_sample'
    MNIST_TINY = f'{URL}mnist_tiny'
    MNIST_VAR_SIZE_TINY = f'{S3_IMAGE}mnist_var_size_tiny'
    PLANET_SAMPLE = f'{URL}planet_sample'
    PLANET_TINY = f'{URL}planet_tiny'
    IMAGENETTE = f'{S3_IMAGE}imagenette2'
    IMAGENETTE_160 = f'{S3_IMAGE}imagenette2-160'
    IMAGENETTE_320 = f'{S3_IMAGE}imagenette2-320'
    IMAGEWOOF = f'{S3_IMAGE}imagewoof2'
    IMAGEWOOF_160 = f'{S3_IMAGE}imagewoof2-160'
    IMAGEWOOF_320 = f'{S3_IMAGE}imagewoof2-320'
    DOGS = f'{URL}dogscats'

    # image classification
    CALTECH_101 = f'{S3_IMAGE}caltech_101'
    CARS = f'{S3_IMAGE}stanford-cars'
    CIFAR_100 = f'{S3_IMAGE}cifar100'
    CUB_200_2011 = f'{S3_IMAGE}CUB_200_2011'
    FLOWERS = f'{S3_IMAGE}oxford-102-flowers'
    FOOD = f'{S3_IMAGE}food-101'
    MNIST = f'{S3_IMAGE}mnist_png'
    PETS = f'{S3_IMAGE}oxford-iiit-pet'

    # text
    AG_NEWS = f'{S3_NLP}ag_news_csv'
    AMAZON_REVIEWS = f'{S3_NLP}amazon_review_full_csv'
    AMAZON_REVIEWS_POLARITY = f'{S3_NLP}amazon_review_polarity_csv'
    DBPEDIA = f'{S3_NLP}dbpedia_csv'
    MT_ENG_FRA = f'{S3_NLP}giga-fren'
    SOGOU_NEWS = f'{S3_NLP}sogou_news_csv'
    WIKITEXT = f'{S3_NLP}wikitext-103'
    WIKITEXT_TINY = f'{S3_NLP}wikitext-2'
    YAHOO_ANSWERS = f'{S3_NLP}yahoo_answers_csv'
    YELP_REVIEWS = f'{S3_NLP}yelp_review_full_csv'
    YELP_REVIEWS_POLARITY = f'{S3_NLP}yelp_review_polarity_csv'

    # image localisation and segmentation
    BIWI_HEAD_POSE = f'{S3_IMAGELOC}biwi_head_pose'
    CAMVID = f'{S3_IMAGELOC}camvid'
    CAMVID_TINY = f'{URL}camvid_tiny'
    LSUN_BEDROOMS = f'{S3_IMAGE}bedroom'
    PASCAL_2007 = f'{S3_IMAGELOC}pascal_2007'
    PASCAL_2012 = f'{S3_IMAGELOC}pascal_2012'

    # audio
    MACAQUES = 'https://storage.googleapis.com/ml-animal-sounds-datasets/macaques'
    ZEBRA_FINCH = 'https://storage.googleapis.com/ml-animal-sounds-datasets/zebra_finch'

    # pretrained models
    OPENAI_TRANSFORMER = f'{S3_MODEL}transformer'
    WT103_FWD = f'{S3_MODEL}wt103-fwd'
    WT103_BWD = f'{S3_MODEL}wt103-bwd'

    # fastlib's extra data sets (available only through FASTLIB_ARCHIVE, see FASTLIB_LOCAL)
    CIFAR10_SMALL = f'{FASTLIB_LOCAL}cifar10_small'  # CIFAR-10 subset: 10,000 train + 2,000 valid JPEGs
    ADULT_UCI = f'{FASTLIB_LOCAL}adult_uci'          # UCI Adult as distributed: adult.data + adult.test


# Known fingerprints of archives, by download address; an archive passes when it matches any one of them.
# ('sha256', size, hex) are the archives of fastlib's offline data folder (and the packaged mnist_tiny.tgz). Those
# were rebuilt from public copies, so they differ byte for byte from fastai's files on S3; for these, fastai publishes
# ('md5_head', size, MD5 of the first MiB), which is kept so that a real download from S3 passes too.
_checks: dict[str, tuple[tuple[str, int, str], ...]] = {
    f'{URLs.ADULT_SAMPLE}.tgz': (
        ('sha256', 406_728, 'f713363e33f98c181094c68e52d43b9bbec0a2323115357145ebc8b60bec0b0f'),
        ('md5_head', 968_212, '64eb9d7e23732de0b138f7372d15492f')),
    f'{URLs.ADULT_UCI}.tgz': (
        ('sha256', 613_698, '4b9e4aa160f0f839738b399eb928535c9019313f5fe08f5a489989b8d7f010f9'),),
    f'{URLs.BIWI_SAMPLE}.tgz': (('md5_head', 593_774, '9179f4c1435f4b291f0d5b072d60c2c9'),),
    f'{URLs.CAMVID_TINY}.tgz': (
        ('sha256', 2_309_762, 'd5a3583d39bde4f69d998c9ea32c5f820c5757c4a91e88f1bfa630f8c9d52852'),
        ('md5_head', 2_314_212, '2cf6daf91b7a2083ecfa3e9968e9d915')),
    f'{URLs.CIFAR10_SMALL}.tgz': (
        ('sha256', 3_891_277, 'b71688aa965b550d8773d93eba0039be78c97385c24120dd4dec3bbed0339cde'),),
    f'{URLs.COCO_TINY}.tgz': (
        ('sha256', 799_685, 'c0ffe5ef1d1026faf13199d773bd4911c6a6b03111fe72c530c6785017f32f7b'),
        ('md5_head', 801_038, '367467451ac4fba79a647753c2c66d3a')),
    f'{URLs.HUMAN_NUMBERS}.tgz': (('md5_head', 30_252, '8a19c3bfa2bcb08cd787e741261f3ea2'),),
    f'{URLs.IMDB_SAMPLE}.tgz': (
        ('sha256', 569_791, 'bba239fb4a9f6db4825e000e6162948a5eecc528f566d78465f05713c32e79b0'),
        ('md5_head', 571_827, '0842e61a9867caa2e6fbdb14fa703d61')),
    f'{URLs.ML_SAMPLE}.tgz': (('md5_head', 51_790, '10961384dfe7c5181460390a460c1f77'),),
    f'{URLs.MNIST_SAMPLE}.tgz': (('md5_head', 3_214_948, '2dbc7ec6f9259b583af0072c55816a88'),),
    f'{URLs.MNIST_TINY}.tgz': (
        ('sha256', 309_186, 'da45570ee31a9e5d2250df7ea18408752e987efd59dd153b03bfe97a5ac765cc'),
        ('md5_head', 342_207, '56143e8f24db90d925d82a5a74141875')),
    f'{URLs.PLANET_SAMPLE}.tgz': (('md5_head', 15_523_994, '8bfb174b3162f07fbde09b54555bdb00'),),
    f'{URLs.PLANET_TINY}.tgz': (('md5_head', 997_569, '490873c5683454d4b2611fb1f00a68a9'),),
}


class DownloadError(OSError):
    "A download failed: no network, a server error, or an incomplete transfer."


class ChecksumError(DownloadError):
    "An archive does not match its known checksum."


class ArchiveError(DownloadError):
    "A file is not a valid gzip-compressed tar archive, or holds a member that may not be extracted."


# ---------------------------------------------------------------------------------------------------------- Config

def _home() -> Path:
    # Read at each call, never cached at import: tests (and users in notebooks) change FASTLIB_HOME on the fly.
    return Path(os.environ.get(HOME_ENV) or '~/.fastlib').expanduser()


def _read_config(fpath: Path) -> dict[str, str]:
    # The tiny subset of YAML that config.yml uses: `key: value` lines, '#' comments, optional quotes.
    res = {}
    for i, line in enumerate(fpath.read_text(encoding='utf-8').splitlines(), 1):
        text = line.strip()
        if not text or text.startswith('#'):
            continue
        key, sep, value = text.partition(':')
        if not sep or not key.strip():
            raise ValueError(f"{fpath}, line {i}: expected 'key: value', got {line!r}.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
        else:
            value = value.split(' #', 1)[0].rstrip()  # as in YAML, ' #' starts a comment in an unquoted value
        res[key.strip()] = value
    return res


def _write_config(fpath: Path, config: dict[str, Any]) -> None:
    lines = ['# fastlib settings: one `key: value` per line. `~` means your home folder; a relative path is taken',
             '# from the folder of this file. Delete this file to get the defaults back.']
    for k, v in config.items():
        v = str(v)
        needs_quotes = v != v.strip() or not v or ' #' in v or v[0] in '"\''
        lines.append(f'{k}: "{v}"' if needs_quotes else f'{k}: {v}')
    with atomic_write(fpath, 'w') as f:
        f.write('\n'.join(lines) + '\n')


class _ConfigMeta(type):
    "Makes `Config.DEFAULT_CONFIG_LOCATION`, `DEFAULT_CONFIG_PATH` and `DEFAULT_CONFIG` follow FASTLIB_HOME live."

    @property
    def DEFAULT_CONFIG_LOCATION(cls) -> str:
        return str(_home())

    @property
    def DEFAULT_CONFIG_PATH(cls) -> str:
        return str(_home() / 'config.yml')

    @property
    def DEFAULT_CONFIG(cls) -> dict[str, str]:
        home = _home()
        return {'data_path': str(home / 'data'), 'data_archive_path': str(home / 'archive'),
                'model_path': str(home / 'models')}


class Config(metaclass=_ConfigMeta):
    "Where fastlib keeps data sets, archives and models: `$FASTLIB_HOME/config.yml` (home defaults to `~/.fastlib`)."

    @classmethod
    def get_key(cls, key: str) -> str | None:
        "The value of `key` in the config file, else its default (None for a key fastlib does not know)."
        return cls.get().get(key, cls.DEFAULT_CONFIG.get(key))

    @classmethod
    def get_path(cls, path: str) -> Path:
        "The config entry `path` (e.g. 'data_path') as a `Path`: '~' expanded, a relative value taken from the home."
        value = cls.get_key(path)
        if value is None:
            raise KeyError(f"No path {path!r} in {cls.DEFAULT_CONFIG_PATH}."
                           f"{did_you_mean(path, list(cls.DEFAULT_CONFIG) + list(cls.get()))}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else _home() / p

    @classmethod
    def data_path(cls) -> Path:
        "The folder extracted data sets go to (default `$FASTLIB_HOME/data`)."
        return cls.get_path('data_path')

    @classmethod
    def data_archive_path(cls) -> Path:
        "The folder downloaded archives go to (default `$FASTLIB_HOME/archive`)."
        return cls.get_path('data_archive_path')

    @classmethod
    def model_path(cls) -> Path:
        "The folder pretrained models go to (default `$FASTLIB_HOME/models`)."
        return cls.get_path('model_path')

    @classmethod
    def get(cls, fpath: PathOrStr | None = None, create_missing: bool = True) -> dict[str, str]:
        """The settings in config file `fpath` (default `$FASTLIB_HOME/config.yml`); with `create_missing`, a missing
    file is first written with the defaults."""
        fpath = Path(fpath or cls.DEFAULT_CONFIG_PATH).expanduser()
        if not fpath.exists() and create_missing:
            cls.create(fpath)
        if not fpath.exists():
            raise FileNotFoundError(f'No fastlib config file at {fpath}: call Config.create({str(fpath)!r}) first.')
        return _read_config(fpath)

    @classmethod
    def create(cls, fpath: PathOrStr) -> None:
        "Write the default settings to config file `fpath`, unless it exists already."
        fpath = Path(fpath).expanduser()
        if fpath.exists():
            return
        _write_config(fpath, cls.DEFAULT_CONFIG)


# ------------------------------------------------------------------------------------------------------------ paths

def url2name(url: str) -> str:
    "The data set's name: the last part of `url` (`.../mnist_tiny` -> 'mnist_tiny')."
    return url.rstrip('/').split('/')[-1]


def datapath4file(filename: str, ext: str = '.tgz', archive: bool = True) -> Path:
    """Where data file `filename` lives: `./data/filename` when it (or its `ext` archive) exists, else in
    `Config.data_archive_path()` when `archive`, else in `Config.data_path()`."""
    local = URLs.LOCAL_PATH / 'data' / filename
    if local.exists() or local.with_name(local.name + ext).exists():
        return local
    return (Config.data_archive_path() if archive else Config.data_path()) / filename


def modelpath4file(filename: str, ext: str = '.tgz') -> Path:
    """Where model file `filename` lives: `./models/filename` when it (or its `ext` archive) exists, else in
    `Config.model_path()`."""
    local = URLs.LOCAL_PATH / 'models' / filename
    if local.exists() or local.with_name(local.name + ext).exists():
        return local
    return Config.model_path() / filename


def url2path(url: str, data: bool = True, ext: str = '.tgz') -> Path:
    "The folder the data set (or model, when `data` is False) at `url` is extracted to; `ext` is its archive's suffix."
    name = url2name(url)
    return datapath4file(name, ext=ext, archive=False) if data else modelpath4file(name, ext=ext)


def _url2tgz(url: str, data: bool = True, ext: str = '.tgz') -> Path:
    # Where a download of `url` + `ext` is cached: the archive folder for data, the model folder for models.
    fname = f'{url2name(url)}{ext}'
    return datapath4file(fname, ext=ext) if data else modelpath4file(fname, ext=ext)


# ----------------------------------------------------------------------------------------------------- checksums

class _Fingerprint:
    "Size, SHA-256 and MD5 of the first MiB of a byte stream, fed chunk by chunk (a download is hashed as it arrives)."

    def __init__(self):
        self.size = 0
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)  # fastai's published fingerprint; not used for security

    def update(self, chunk: bytes) -> None:
        if self.size < _MIB:
            self._md5.update(chunk[:_MIB - self.size])
        self._sha.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def matches(self, kind: str, size: int, digest: str) -> bool:
        return self.size == size and digest == (self.sha256 if kind == 'sha256' else self._md5.hexdigest())

    @classmethod
    def of_file(cls, path: Path) -> _Fingerprint:
        fp = cls()
        with open(path, 'rb') as f:
            while chunk := f.read(_MIB):
                fp.update(chunk)
        return fp


def _mismatch(file_url: str, fp: _Fingerprint) -> str | None:
    "None when `fp` matches a known fingerprint of `file_url` (or none is known), else 'expected ..., got ...'."
    known = _checks.get(file_url)
    if not known or any(fp.matches(*k) for k in known):
        return None
    expected = ' or '.join(f'sha256 {d} ({s:,} bytes)' if kind == 'sha256' else f'{s:,} bytes with MD5 {d} '
                           f'over the first MiB' for kind, s, d in known)
    return f'expected {expected}; got sha256 {fp.sha256} ({fp.size:,} bytes)'


def _check_tgz(f: BinaryIO, source: str) -> None:
    "Read all of the open file `f` as a gzip tar; raise `ArchiveError` naming `source` if it is not a complete one."
    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f, mode='rb') as gz:
            with tarfile.open(fileobj=gz, mode='r|') as tar:  # stream mode: one pass over the data
                n = sum(1 for _ in tar)
            while gz.read(_MIB):  # to the end of the gzip stream, where its CRC and length are checked
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ArchiveError(f'{source} is not a complete gzip-compressed tar archive ({type(e).__name__}: {e}).') from e
    if n == 0:
        raise ArchiveError(f'{source} is a tar archive with no files in it.')


def _offline_hint(fname: str) -> str:
    return (f'If this machine has no network, copy {fname} from elsewhere into the folder named by the '
            f'{ARCHIVE_ENV} environment variable, or into {Config.data_archive_path()}: untar_data looks there '
            f'before it downloads.')


# ------------------------------------------------------------------------------------------------------- download

class _Incomplete(Exception):
    "The connection ended before the bytes the server announced had all arrived (worth retrying)."


# Failures worth another try: no connection yet, a timeout, a dropped connection, a short transfer, a 5xx answer.
_RETRYABLE = (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError, _Incomplete)


def _fetch(url: str, f: BinaryIO, show_progress: bool, chunk_size: int, timeout: float) -> _Fingerprint:
    "Write the body of `url` to `f`; return its fingerprint; raise `_Incomplete` if it is shorter than announced."
    req = urllib.request.Request(url, headers={'User-Agent': 'fastlib'})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code in (408, 429):  # the server's trouble, maybe passing: let the caller retry
            raise
        raise DownloadError(f'Could not download {url}: the server answered HTTP {e.code} {e.reason}. '
                            f'Check the address. {_offline_hint(url2name(url))}') from e
    fp = _Fingerprint()
    with resp:
        length = resp.headers.get('Content-Length', '')
        total = int(length) if length.strip().isdigit() else None
        bar = progress_bar(range(total), total=total, leave=False, comment=url2name(url)) \
            if show_progress and total else None
        if bar is not None:
            bar.update(0)
        while chunk := resp.read(chunk_size):
            f.write(chunk)
            fp.update(chunk)
            if bar is not None:
                bar.update(min(fp.size, total))
    # http.client returns a short body silently when the connection drops, so count the bytes ourselves
    if total is not None and fp.size != total:
        raise _Incomplete(f'the connection ended after {fp.size:,} of the {total:,} bytes the server announced')
    return fp


def download_url(url: str, dest: PathOrStr, overwrite: bool = False, show_progress: bool = True,
                 chunk_size: int = 1024 * 1024, timeout: float = 4, retries: int = 5) -> Path:
    """Download `url` to `dest` unless it exists and not `overwrite`, `chunk_size` bytes at a time, waiting `timeout`
    seconds at most for the network and trying `retries` more times after a network failure; bar if `show_progress`."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        return dest
    is_tgz = url.endswith(('.tgz', '.tar.gz'))
    reason: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(_RETRY_WAIT * attempt)
        try:
            # atomic_write renames the temp file over `dest` only when the block ends without error, so a failed
            # or interrupted download never leaves a file that a later call would take for a complete one.
            with atomic_write(dest, 'w+b') as f:
                fp = _fetch(url, f, show_progress, chunk_size, timeout)
                if (mismatch := _mismatch(url, fp)) is not None:
                    raise ChecksumError(
                        f'The download of {url} does not match its known checksum: {mismatch}. The file was deleted. '
                        f'Try again (the transfer may have been damaged); if it fails again, put a good copy of '
                        f'{dest.name} into the folder named by the {ARCHIVE_ENV} environment variable.')
                if is_tgz:
                    _check_tgz(f, f'The download of {url}')
            return dest
        except _RETRYABLE as e:
            reason = e
    tries = f'{retries + 1} tries' if retries else '1 try'
    raise DownloadError(f'Could not download {url} ({tries}): {_describe(reason)}. '
                        f'{_offline_hint(dest.name)}') from reason


def _describe(e: BaseException | None) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f'the server answered HTTP {e.code} {e.reason}'
    if isinstance(e, urllib.error.URLError):
        return f'no connection ({e.reason})'
    return f'{type(e).__name__}: {e}' if not isinstance(e, _Incomplete) else str(e)


def download_data(url: str, fname: PathOrStr | None = None, data: bool = True, ext: str = '.tgz') -> Path:
    """Download `url` + `ext` to `fname` (default: in the archive folder, or the model folder when not `data`) unless
    it is there already; return its path."""
    fname = Path(ifnone(fname, _url2tgz(url, data, ext=ext)))
    if not fname.exists():
        print(f'Downloading {url}{ext}')
        download_url(f'{url}{ext}', fname)
    return fname


# -------------------------------------------------------------------------------------------------------- extract

def _archive_dir() -> Path | None:
    value = os.environ.get(ARCHIVE_ENV)
    return Path(value).expanduser() if value else None


def _verify_local(path: Path, file_url: str, where: str, remedy: str) -> None:
    "Raise `ChecksumError` if the archive at `path` (found `where`) does not match what is known of `file_url`."
    if file_url not in _checks:
        return
    if (mismatch := _mismatch(file_url, _Fingerprint.of_file(path))) is not None:
        raise ChecksumError(f'{path} ({where}) does not match the known checksum of {file_url}: {mismatch}. {remedy}')


def _find_archive(url: str, cache: Path, force_download: bool, verbose: bool) -> Path:
    "The archive of `url` to extract: from FASTLIB_ARCHIVE, the `cache` file, the package, or a fresh download."
    tgz, file_url = f'{url2name(url)}.tgz', f'{url}.tgz'
    mirror = _archive_dir()
    if mirror is not None and (mirror / tgz).is_file():
        # The mirror is the offline source of truth, also under force_download; it is read-only, so a bad copy
        # there is reported, not replaced.
        _verify_local(mirror / tgz, file_url, f'in the folder named by {ARCHIVE_ENV}',
                      f'Replace it with a good copy, or unset {ARCHIVE_ENV} to download it.')
        if verbose:
            print(f'Using {mirror / tgz} (from {ARCHIVE_ENV})')
        return mirror / tgz
    if not force_download and cache.is_file():
        try:
            _verify_local(cache, file_url, 'a cached download', '')
            if verbose:
                print(f'Using {cache} (cached download)')
            return cache
        except ChecksumError as e:
            # Our own cache: an old version or a damaged copy. Drop it and fetch the current one.
            print(f'{e} Downloading it again.')
            cache.unlink()
    packaged = PACKAGE_DATA / tgz
    if packaged.is_file():
        # Shipped with fastlib and read-only like the mirror, so force_download does not bypass it either.
        _verify_local(packaged, file_url, 'shipped with fastlib', 'The installation is damaged: reinstall fastlib.')
        if verbose:
            print(f'Using {packaged} (shipped with fastlib)')
        return packaged
    if url.startswith(URLs.FASTLIB_LOCAL):  # no public address: say so now instead of retrying a dead host
        raise DownloadError(f'{url2name(url)} has no public download: it is available only through '
                            f'{ARCHIVE_ENV}. Put {tgz} into the folder named by the {ARCHIVE_ENV} environment '
                            f'variable (or into {Config.data_archive_path()}) and call untar_data again.')
    print(f'Downloading {file_url}')
    return download_url(file_url, cache, overwrite=True)


def _unique_sibling(path: Path, tag: str) -> Path:
    # Hidden and unique (pid + random), so concurrent runs never collide and `ls` stays clean.
    return path.with_name(f'.{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{tag}')


def _safe_extractall(tar: tarfile.TarFile, path: Path) -> None:
    "Extract `tar` into `path`, refusing absolute paths, '..', links that lead outside, and device files."
    if hasattr(tarfile, 'data_filter'):
        tar.extractall(path, filter='data')
        return
    # Pythons older than 3.10.12 / 3.11.4 have no extraction filters: check by hand what the 'data' filter checks.
    root = os.path.realpath(path)

    def inside(p: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(p)]) == root

    for m in tar.getmembers():
        dest = os.path.join(root, m.name)
        if os.path.isabs(m.name) or not inside(dest):
            raise tarfile.TarError(f'{m.name!r} would be extracted outside the destination')
        if m.isdev():
            raise tarfile.TarError(f'{m.name!r} is a device file')
        if m.issym() and (os.path.isabs(m.linkname) or not inside(os.path.join(os.path.dirname(dest), m.linkname))):
            raise tarfile.TarError(f'{m.name!r} links to {m.linkname!r}, outside the destination')
        if m.islnk() and (os.path.isabs(m.linkname) or not inside(os.path.join(root, m.linkname))):
            raise tarfile.TarError(f'{m.name!r} links to {m.linkname!r}, outside the destination')
    tar.extractall(path)


def _extract(archive: Path, target: Path, replace: bool, verbose: bool) -> None:
    "Extract `archive` into a temporary folder next to `target`, then rename the result to `target`."
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unique_sibling(target, 'partial')
    tmp.mkdir()  # plain mkdir (not mkdtemp) so the folder gets the user's usual permissions
    try:
        if verbose:
            print(f'Extracting {archive} to {target}')
        try:
            with tarfile.open(archive, 'r:gz') as tar:
                _safe_extractall(tar, tmp)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise ArchiveError(f'Could not extract {archive} ({type(e).__name__}: {e}). If it is a download, '
                               f'delete it or call untar_data with force_download=True; if it lies in the folder '
                               f'named by {ARCHIVE_ENV}, replace it with a good copy.') from e
        entries = list(tmp.iterdir())
        # fastai archives hold one folder named like the archive; anything else becomes the content of `target`.
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == target.name else tmp
        if not target.exists():
            os.rename(root, target)
        elif replace:
            old = _unique_sibling(target, 'old')
            os.rename(target, old)
            try:
                os.rename(root, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        # else: another process finished the same extraction first; keep its folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def untar_data(url: str, fname: PathOrStr | None = None, dest: PathOrStr | None = None, data: bool = True,
               force_download: bool = False, verbose: bool = False) -> Path:
    """Return the extracted folder of the data set at `url`, finding or downloading its `.tgz` archive first.

    `fname`: where to cache the downloaded archive (default `Config.data_archive_path()/<name>.tgz`).
    `dest`: the folder to extract into, as in fastai v1: the result is `dest/<name>` (default
    `Config.data_path()/<name>`, or `Config.model_path()/<name>` when `data` is False).
    `force_download`: fetch the archive again (an archive in FASTLIB_ARCHIVE or shipped with fastlib still counts as
    the source: they are read-only mirrors) and re-extract it over the old folder.
    `verbose`: print where the archive comes from and where it goes.
    """
    target = url2path(url, data) if dest is None else Path(dest) / url2name(url)
    if target.is_dir() and not force_download:
        return target  # extracted earlier: folders only appear once complete, so this one is
    if target.exists() and not target.is_dir():
        raise FileExistsError(f'{target} is a file, not a data set folder: move it away and call untar_data again.')
    cache = Path(fname) if fname is not None else _url2tgz(url, data)
    archive = _find_archive(url, cache, force_download, verbose)
    _extract(archive, target, replace=force_download, verbose=verbose)
    return target
