"""Model provenance: a registered version's files are hashed and the digest signed (HMAC-SHA256) when it is
registered; serving, deploy and monitor download the files, hash them and check the signature before anything of
the version is loaded (unpickled, imported or executed), and refuse unsigned or altered versions.

The digest is SHA-256 over every file of the version's artifact directory, sorted by relative path, each as its
path and bytes with their lengths (``MLmodel``, the models-from-code file, the policy bundle: all of it). The key is
``TRADEPIPE_SIGNING_KEY``; when it is unset and the registry is a local SQLite store, a key file beside the store
(``<store>.signing-key``, mode 0600, created by the first registration) is used, so the default local run signs and
verifies with no setup. Any other registry (a team's HTTP server) needs the variable, the same in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
from mlflow.artifacts import download_artifacts
from mlflow.pyfunc import PyFuncModel

from mlflow import MlflowClient
from tradepipe.settings import SIGNING_KEY_ENV, settings

DIGEST_TAG = "tradepipe.artifacts_sha256"  # every file of the version, as downloaded
SIGNATURE_TAG = "tradepipe.signature"  # HMAC-SHA256 of the digest
KEY_ID_TAG = "tradepipe.signing_key_id"  # which key signed (a hash of it: says "another key", reveals nothing)
KEY_FILE_SUFFIX = ".signing-key"
MIN_KEY_LENGTH = 32
_SQLITE = "sqlite:///"
_CHUNK = 1 << 20


class ProvenanceError(RuntimeError):
    """A version cannot be trusted (unsigned, altered, signed with another key) or no key is available.

    The message is for the log; ``reason`` (``unsigned``, ``bad_signature``, ``digest_mismatch``,
    ``no_signing_key``, ``bad_signing_key``, ``unsafe_file``) is safe to show clients."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def digest_files(directory: Path) -> str:
    """SHA-256 over the files under ``directory`` sorted by relative path, each as (path, bytes) with lengths.

    Refuses symbolic links (a download never makes them; a link could point anywhere)."""
    digest = hashlib.sha256(b"tradepipe-artifacts-v1\0")
    entries = sorted((p.relative_to(directory).as_posix(), p) for p in directory.rglob("*")
                     if p.is_symlink() or p.is_file())
    for name, path in entries:
        if path.is_symlink():
            raise ProvenanceError(f"{path} is a symbolic link; refusing to hash or load it", "unsafe_file")
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def key_file(tracking_uri: str) -> Path | None:
    """The key file of a local SQLite registry (beside the store), else None."""
    if not tracking_uri.startswith(_SQLITE) or ":memory:" in tracking_uri:
        return None
    store = Path(tracking_uri.removeprefix(_SQLITE).split("?", 1)[0])
    return store.with_name(store.name + KEY_FILE_SUFFIX) if store.is_absolute() else None


def signing_key(tracking_uri: str, *, create: bool = False) -> bytes:
    """The HMAC key: $TRADEPIPE_SIGNING_KEY, else the key file of a local SQLite registry (created when
    ``create``, i.e. when registering). ProvenanceError saying what to set when there is none."""
    env = settings().signing_key
    if env is not None:
        key = env.get_secret_value().encode()
        if len(key) < MIN_KEY_LENGTH:
            raise ProvenanceError(f"{SIGNING_KEY_ENV} has {len(key)} characters; use at least {MIN_KEY_LENGTH}, e.g. "
                                  "python -c 'import secrets; print(secrets.token_hex(32))'", "bad_signing_key")
        return key
    path = key_file(tracking_uri)
    if path is None:
        raise ProvenanceError(f"set {SIGNING_KEY_ENV}: registered models are signed and verified with it, and this "
                              "registry is not a local SQLite store (which would have a key file); every process "
                              "that registers, deploys, monitors or serves models needs the same value",
                              "no_signing_key")
    if create and not path.exists():
        _create_key_file(path)
    if not path.is_file():
        raise ProvenanceError(f"no signing key: {SIGNING_KEY_ENV} is unset and {path} does not exist (the register "
                              "stage creates it on first use); set the variable to the key the versions were "
                              "signed with", "no_signing_key")
    if path.stat().st_mode & 0o077:
        raise ProvenanceError(f"{path} is readable by other users (mode {path.stat().st_mode & 0o777:o}): "
                              f"chmod 600 {path}", "bad_signing_key")
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ProvenanceError(f"{path} holds {len(key)} bytes, fewer than {MIN_KEY_LENGTH}: delete it (versions "
                              "signed with it will need registering again) or set " + SIGNING_KEY_ENV,
                              "bad_signing_key")
    return key


def _create_key_file(path: Path) -> None:
    """A random key in ``path`` (mode 0600), written whole before it appears; an existing file wins a race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def key_id(key: bytes) -> str:
    """A short public name of ``key`` (a hash), to tell which key signed a version."""
    return hashlib.sha256(b"tradepipe-signing-key-id\0" + key).hexdigest()[:16]


def signature(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of ``digest`` under ``key``."""
    return hmac.new(key, b"tradepipe-model-v1\0" + digest.encode(), hashlib.sha256).hexdigest()


def provenance_tags(key: bytes, digest: str) -> dict[str, str]:
    """The version tags recording ``digest`` and its signature."""
    return {DIGEST_TAG: digest, SIGNATURE_TAG: signature(key, digest), KEY_ID_TAG: key_id(key)}


def verify(tags: Mapping[str, str], directory: Path, key: bytes, label: str) -> str:
    """Check that the files under ``directory`` are the ones signed in ``tags``; return their digest.

    ProvenanceError when the version is unsigned, its signature is not ``key``'s, or its files differ."""
    digest, signed = _signed(tags, label)
    if not hmac.compare_digest(signature(key, digest), signed):
        raise ProvenanceError(f"{label}: the signature is not this key's (signed by key {tags.get(KEY_ID_TAG, '?')},"
                              f" this process holds key {key_id(key)}): set {SIGNING_KEY_ENV} to the key that "
                              "registered it, or the tags were forged; refusing it", "bad_signature")
    actual = digest_files(directory)
    if not hmac.compare_digest(actual, digest):
        raise ProvenanceError(f"{label}: its files changed after signing (sha256 {actual}, signed {digest}); "
                              "refusing it", "digest_mismatch")
    return digest


def _signed(tags: Mapping[str, str], label: str) -> tuple[str, str]:
    digest, signed = tags.get(DIGEST_TAG), tags.get(SIGNATURE_TAG)
    if not digest or not signed:
        raise ProvenanceError(f"{label} is unsigned (no {DIGEST_TAG} / {SIGNATURE_TAG} tags): only versions "
                              "registered by the register stage are loaded; refusing it", "unsigned")
    return digest, signed


def _download(client: MlflowClient, name: str, version: str, tracking_uri: str, into: str) -> Path:
    source = client.get_model_version_download_uri(name, version)
    return Path(download_artifacts(artifact_uri=source, dst_path=into, tracking_uri=tracking_uri))


def sign_version(client: MlflowClient, name: str, version: str, tracking_uri: str) -> str:
    """Download version ``version`` of ``name``, hash its files and record the signed digest as its tags (the key
    file of a local registry is created if needed); return the digest."""
    key = signing_key(tracking_uri, create=True)
    with tempfile.TemporaryDirectory(prefix="tradepipe-sign-") as tmp:
        digest = digest_files(_download(client, name, version, tracking_uri, tmp))
    for tag, value in provenance_tags(key, digest).items():
        client.set_model_version_tag(name, version, tag, value)
    return digest


@contextmanager
def verified_download(client: MlflowClient, name: str, version: str, tracking_uri: str,
                      tags: Mapping[str, str] | None = None) -> Iterator[Path]:
    """Download version ``version`` of ``name`` into a temporary directory, verify it (:func:`verify`, with the
    version's ``tags``, read from the registry when not given) and yield the directory; nothing in it has been
    loaded. Load from the yielded directory only (those are the bytes checked); it is deleted afterwards."""
    if tags is None:
        tags = client.get_model_version(name, version).tags
    _signed(tags, f"models:/{name}/{version}")  # an unsigned version is refused whatever the key
    key = signing_key(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="tradepipe-verified-") as tmp:
        local = _download(client, name, version, tracking_uri, tmp)
        verify(tags, local, key, f"models:/{name}/{version}")
        yield local


def load_verified(client: MlflowClient, name: str, version: str, tracking_uri: str,
                  tags: Mapping[str, str] | None = None) -> PyFuncModel:
    """The pyfunc of version ``version`` of ``name``, loaded only after :func:`verified_download` checked it."""
    with verified_download(client, name, version, tracking_uri, tags) as local:
        return mlflow.pyfunc.load_model(str(local))
