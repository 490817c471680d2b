"""The course data sets: found offline, or downloaded once and checked.

Every chapter that needs text calls :func:`load_text` (or :func:`data_path` for the file). A data
set is looked for in three places, in this order:

1. the folder named by the environment variable ``LLMCOURSE_DATA_DIR`` (CI and offline use: point
   it at a folder holding ``tinyshakespeare.txt`` and ``names.txt``);
2. the user's cache folder (``$XDG_CACHE_HOME/llmcourse`` or ``~/.cache/llmcourse``; the variable
   ``LLMCOURSE_CACHE_DIR`` overrides it);
3. the data set's canonical address, downloaded with a progress bar into a temporary file in the
   cache folder, checked against its SHA-256 sum, and only then renamed into place. So the cache
   never holds a partial or corrupt file: a download that fails leaves nothing behind, and one whose
   checksum is wrong is kept aside (``NAME.corrupt``) for inspection but never used.

Introduced in Chapter 0; every chapter uses it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Dataset", "DATASETS", "DataError", "data_path", "load_text", "cache_dir"]


@dataclass(frozen=True)
class Dataset:
    """One course data set: where it comes from and how to recognise the right file."""

    name: str
    filename: str
    url: str
    size: int
    sha256: str
    description: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            name="tinyshakespeare",
            filename="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            size=1115394,
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            description="About 40,000 lines of Shakespeare's plays (public domain).",
        ),
        Dataset(
            name="names",
            filename="names.txt",
            url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            size=228145,
            sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            description="About 32,000 common first names, one a line (as shipped with makemore).",
        ),
    ]
}


class DataError(RuntimeError):
    """A data set could not be found, downloaded or verified. The message says what to do."""


def _dataset(name: str) -> Dataset:
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a string such as 'tinyshakespeare', "
                        f"got {type(name).__name__}: {name!r}")
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in sorted(DATASETS))
        raise KeyError(f"unknown data set {name!r}; the known data sets are {known}") from None


def cache_dir() -> Path:
    """The folder where downloaded data sets are kept."""
    if os.environ.get("LLMCOURSE_CACHE_DIR"):
        return Path(os.environ["LLMCOURSE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "llmcourse"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(ds: Dataset, url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target`` through a temporary file; check the SHA-256 first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{ds.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    hint = (f"To work offline, download {ds.filename} yourself and set LLMCOURSE_DATA_DIR to the "
            f"folder that holds it (for example: export LLMCOURSE_DATA_DIR=../shared/data).")
    try:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, os.fdopen(fd, "wb") as out:
                total = int(response.headers.get("Content-Length") or ds.size)
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {ds.filename}")
                try:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        digest.update(block)
                        if bar is not None:
                            bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
        except urllib.error.HTTPError as e:
            raise DataError(f"could not download data set {ds.name!r} from {url}: the server "
                            f"answered HTTP {e.code} {e.reason}. {hint}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(f"could not download data set {ds.name!r} from {url} ({reason}); "
                            f"are you offline? {hint}") from e
        got = digest.hexdigest()
        if got != ds.sha256:
            aside = target.with_name(target.name + ".corrupt")
            os.replace(tmp, aside)
            raise DataError(f"the file downloaded from {url} for data set {ds.name!r} has SHA-256 "
                            f"{got}, expected {ds.sha256}; it was kept aside as {aside} and not "
                            f"used. {hint}")
        os.replace(tmp, target)  # atomic: the cache holds the whole, checked file or nothing
    finally:
        if tmp.exists():
            tmp.unlink()


def data_path(name: str, *, progress: bool = True) -> Path:
    """The path of data set ``name`` on this machine, downloading it first if needed.

    >>> data_path("names").name
    'names.txt'
    """
    ds = _dataset(name)
    env_dir = os.environ.get("LLMCOURSE_DATA_DIR")
    if env_dir:
        path = Path(env_dir).expanduser() / ds.filename
        if not path.is_file():
            raise DataError(f"LLMCOURSE_DATA_DIR is set to {env_dir!r}, but it has no file "
                            f"{ds.filename!r} for data set {ds.name!r}; put the file there "
                            f"(from {ds.url}) or unset LLMCOURSE_DATA_DIR to download it.")
        return path
    cached = cache_dir() / ds.filename
    if cached.is_file():
        return cached
    _download(ds, ds.url, cached, progress)
    return cached


def load_text(name: str, *, progress: bool = True) -> str:
    """The text of data set ``name`` (``"tinyshakespeare"`` or ``"names"``) as a string."""
    return data_path(name, progress=progress).read_text(encoding="utf-8")
