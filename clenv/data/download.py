"""Fetching a data set's official files, with the URLs and md5 checksums of torchvision's dataset
classes and torchvision's ``download_url``, into a cache folder.

Every file is downloaded under a temp name beside its target, its md5 checked, and only then
renamed (archives: extracted into a temp folder, each member's md5 checked, the folder renamed),
so a target name always holds a verified file: a cache hit is a file that exists, and a run
killed mid-download leaves only a temp file that the next download replaces. Downloads into one
folder are serialised by a lock on the folder. torchvision (hence torch) is imported only when
a download is needed; reading the files is the sources' own, numpy-only code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from clenv.config.schema import PATH, Field
from clenv.errors import DataError, EnvironmentFailure

try:
    import fcntl
except ImportError:  # Windows: downloads are not serialised between processes
    fcntl = None

DATA_ENV = "CLENV_DATA"
_CHUNK = 1 << 20


def default_root() -> Path:
    """The cache folder of downloaded data sets: ``$CLENV_DATA``, else ``~/.cache/clenv/data``."""
    return Path(os.path.expanduser(os.environ.get(DATA_ENV) or "~/.cache/clenv/data"))


def data_root(value: str | None) -> Path:
    """A source's ``root`` parameter as a folder (``~`` expanded; null: the default cache)."""
    return default_root() if value is None else Path(os.path.expanduser(value))


def missing_files(key: str, root: Path, what: str, inside: str | None = None) -> DataError:
    """The one-line error of a source whose files are not in ``root`` (nor in its subfolder
    ``inside``) and that may not fetch them."""
    where = f"{root} or {root / inside}" if inside else f"{root}"
    return DataError(f"{key}.root: no {what} in {where}; set {key}.download: true to fetch the "
                     f"official files into {root}, or point {key}.root at a folder that holds "
                     f"them")


def find_or_fetch(key: str, root: Path, inside: str | None, files: list[str], what: str,
                  download: bool, fetch: Callable[[], None]) -> Path:
    """The folder holding all ``files``: ``root/inside`` when that folder exists, else ``root``.
    When they are missing and ``download`` is set, ``fetch()`` brings them first."""
    def folder() -> Path:
        return root / inside if inside and (root / inside).is_dir() else root

    def missing() -> list[str]:
        return [f for f in files if not (folder() / f).is_file()]

    if missing() and download:
        if folder() != root:
            raise DataError(f"{key}.root: {folder()} lacks {', '.join(missing())}; remove that "
                            f"folder so that {key}.download fetches it again")
        fetch()
    if missing():
        if download:
            raise DataError(f"{key}.root: the download brought no {', '.join(missing())} "
                            f"into {folder()} (torchvision's file names differ from the ones "
                            f"read); place the files there yourself")
        raise missing_files(key, root, f"{what} ({', '.join(missing())})", inside)
    return folder()


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _torchvision_class(name: str) -> type:
    try:
        import torchvision.datasets as datasets
    except ImportError as exc:
        raise EnvironmentFailure(f"downloading needs torchvision, which does not import ({exc}); "
                                 f"reinstall clenv's dependencies") from exc
    return getattr(datasets, name)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) so that two processes never
    download into it at once; the kernel drops the lock if the process dies."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if fcntl else None
    except OSError as exc:
        raise EnvironmentFailure(f"cannot create or open the data folder {folder} ({exc}); "
                                 f"choose a writable data.root") from exc
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _download(urls: list[str], folder: Path, filename: str, md5: str) -> Path:
    """Download the first of ``urls`` that answers into ``folder/.filename.part`` and check its
    md5; return the temp file (the caller renames it). Nothing is left behind on failure."""
    from torchvision.datasets.utils import download_url

    part = folder / f".{filename}.part"
    problems = []
    for url in urls:
        _remove(part)  # a killed run's leftover: download_url would keep it
        try:
            download_url(url, str(folder), part.name)
        except Exception as exc:  # any transfer error is reported the same way
            _remove(part)
            problems.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        except BaseException:  # Ctrl-C: no temp file stays behind (a SIGKILL leaves it)
            _remove(part)
            raise
        got = md5_of(part) if part.is_file() else "nothing"
        if got == md5:
            return part
        size = part.stat().st_size if part.is_file() else 0
        _remove(part)
        problems.append(f"{url}: md5 {got} of {size} bytes received, expected {md5} (the transfer "
                        f"was cut short or the server sent another file)")
    raise EnvironmentFailure(f"cannot download {filename} into {folder}: {'; '.join(problems)}; "
                             f"retry, or place the verified file there yourself")


def fetch_files(folder: Path, files: list[tuple[list[str], str, str]]) -> None:
    """Make sure ``folder`` holds each ``(urls, filename, md5)``, downloading the missing ones."""
    with _locked(folder):
        for urls, filename, md5 in files:
            target = folder / filename
            if target.is_file():
                continue
            part = _download(urls, folder, filename, md5)
            try:
                os.replace(part, target)
            except OSError as exc:
                _remove(part)
                raise EnvironmentFailure(f"cannot store {filename} in {folder} ({exc})") from exc


def fetch_archive(root: Path, url: str, filename: str, md5: str, member_dir: str,
                  members: list[tuple[str, str]]) -> None:
    """Download the ``.tar.gz`` at ``url``, check its md5, and extract the ``(name, md5)``
    ``members`` of its ``member_dir`` into ``root/member_dir`` (each member checked; the folder
    appears whole or not at all). The archive itself is not kept."""
    with _locked(root):
        target = root / member_dir
        if target.is_dir():
            return
        staging = root / f".{member_dir}.part"
        _remove(staging)
        archive = _download([url], root, filename, md5)
        try:
            _extract(archive, filename, staging, member_dir, members)
            try:
                os.replace(staging / member_dir, target)
            except OSError as exc:
                raise EnvironmentFailure(f"cannot store {member_dir} in {root} ({exc})") from exc
        finally:
            _remove(archive)
            _remove(staging)


def _extract(archive: Path, filename: str, staging: Path, member_dir: str,
             members: list[tuple[str, str]]) -> None:
    """Copy the named members out of the archive (no other entry, no link is followed) and check
    each one's md5."""
    folder = staging / member_dir
    folder.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name, member_md5 in members:
                entry = tar.getmember(f"{member_dir}/{name}")
                source = tar.extractfile(entry) if entry.isfile() else None
                if source is None:
                    raise KeyError(f"{member_dir}/{name} is not a regular file")
                with source, open(folder / name, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                got = md5_of(folder / name)
                if got != member_md5:
                    raise EnvironmentFailure(f"{filename}: member {member_dir}/{name} "
                                             f"has md5 {got}, expected {member_md5}; retry the "
                                             f"download")
    except (tarfile.TarError, KeyError, EOFError, OSError) as exc:
        raise EnvironmentFailure(f"cannot extract {filename} into {staging.parent} "
                                 f"({type(exc).__name__}: {exc}); retry the download") from exc


def fetch_idx_family(class_name: str, folder: Path) -> None:
    """Fetch the four IDX ``.gz`` files of torchvision's ``class_name`` (MNIST, FashionMNIST,
    KMNIST) into ``folder``, trying each of its mirrors."""
    cls = _torchvision_class(class_name)
    fetch_files(folder, [([mirror + name for mirror in cls.mirrors], name, md5)
                         for name, md5 in cls.resources])


def fetch_cifar(class_name: str, root: Path) -> None:
    """Fetch and extract torchvision's ``class_name`` (CIFAR10, CIFAR100) archive into
    ``root/<its base_folder>``, checking the archive's and every member's md5."""
    cls = _torchvision_class(class_name)
    members = [(name, md5) for name, md5 in cls.train_list + cls.test_list]
    members.append((cls.meta["filename"], cls.meta["md5"]))
    fetch_archive(root, cls.url, cls.filename, cls.tgz_md5, cls.base_folder, members)


def fetch_svhn(root: Path, splits: tuple[str, ...]) -> None:
    """Fetch the ``.mat`` files of the SVHN ``splits`` (torchvision's ``split_list``) into
    ``root``."""
    cls = _torchvision_class("SVHN")
    fetch_files(root, [([cls.split_list[s][0]], cls.split_list[s][1], cls.split_list[s][2])
                       for s in splits])


def archive_fields(folder: str, holding: str) -> dict:
    """The parameters of a source read from an official archive (CIFAR-10/100): ``folder`` is
    the archive's base folder, ``holding`` what the folder holds."""
    return {
        "root": Field(PATH, None, f"folder holding {folder}/ or its {holding}; null: "
                                  "$CLENV_DATA or ~/.cache/clenv/data", nullable=True),
        "download": Field(bool, False, "fetch and extract the official archive into "
                                       f"root/{folder} when the files are missing "
                                       "(md5-checked, cached)"),
        "seed": Field(int, 0, "random seed of subsampling"),
        "max_train_per_class": Field(int, None, "keep at most this many train samples per class",
                                     min=1, nullable=True),
        "max_test_per_class": Field(int, None, "keep at most this many test samples per class",
                                    min=1, nullable=True),
    }
