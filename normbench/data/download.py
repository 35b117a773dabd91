"""Fetch a dataset's files from their mirrors, MD5-verified (each catalog entry lists them)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

# Short: an unreachable network should fail the run in seconds, not minutes.
TIMEOUT_S = 10.0


class DownloadError(Exception):
    """Every mirror failed; the message lists why (turned into an InputError by the caller)."""


@dataclass(frozen=True)
class Remote:
    """One downloadable file, the mirrors that serve it, and its published MD5."""

    filename: str
    md5: str
    mirrors: tuple[str, ...]  # base URLs ending in "/"
    extract: tuple[str, ...] = ()  # for an archive: member file names to unpack, flat


def mirrored(mirrors: tuple[str, ...], md5s: dict[str, str]) -> tuple[Remote, ...]:
    """One :class:`Remote` per ``file name → MD5``, each served by the same ``mirrors``."""
    return tuple(Remote(filename, md5, mirrors) for filename, md5 in md5s.items())


def offline() -> bool:
    """True when ``NORMBENCH_OFFLINE`` is set to anything but an empty/false value."""
    return os.environ.get("NORMBENCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def md5sum(path: Path) -> str:
    """Hex MD5 of a file (the checksum the datasets publish; integrity, not security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, md5: str, timeout: float) -> None:
    """Stream ``url`` into a temp file next to ``target``; rename only if the MD5 matches."""
    import urllib.request

    print(f"normbench: downloading {url}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != md5:
            raise DownloadError(f"checksum mismatch (md5 {digest.hexdigest()}, expected {md5})")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """The short cause of a failed download, e.g. ``Name or service not known``."""
    reason = getattr(exc, "reason", exc)  # urllib's URLError wraps the socket error
    return str(getattr(reason, "strerror", None) or reason)


def fetch(remote: Remote, dest_dir: Path, timeout: float = TIMEOUT_S) -> Path:
    """Download ``remote`` into ``dest_dir`` from the first mirror that works."""
    target = dest_dir / remote.filename
    if target.is_file() and md5sum(target) == remote.md5:
        return target
    errors: list[str] = []
    for base in remote.mirrors:
        url = base + remote.filename
        try:
            _download(url, target, remote.md5, timeout)
            return target
        except (OSError, ValueError, DownloadError) as exc:  # URLError and timeouts are OSErrors
            errors.append(f"{urlsplit(url).netloc or url}: {_reason(exc)}")
    raise DownloadError("; ".join(errors))


def extract_members(archive: Path, names: tuple[str, ...], dest_dir: Path) -> None:
    """Unpack the regular files called ``names`` (any folder inside the archive) flat into
    ``dest_dir``; nothing else is extracted, so archive paths can never escape it."""
    import tarfile

    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if base not in names or not member.isfile():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=dest_dir)
                try:
                    with os.fdopen(fd, "wb") as out, source:
                        shutil.copyfileobj(source, out)
                    os.replace(tmp, dest_dir / base)
                finally:
                    Path(tmp).unlink(missing_ok=True)
                found.add(base)
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise DownloadError(f"{archive} could not be unpacked: {exc}") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DownloadError(f"{archive} lacks {', '.join(missing)}")


def download_all(remotes: tuple[Remote, ...], dest_dir: Path, timeout: float = TIMEOUT_S) -> None:
    """Fetch every one of ``remotes`` into ``dest_dir`` (archives are unpacked, then removed
    to save space); ``DownloadError`` when a file cannot be had."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for remote in remotes:
        path = fetch(remote, dest_dir, timeout)
        if remote.extract:
            extract_members(path, remote.extract, dest_dir)
            path.unlink(missing_ok=True)
