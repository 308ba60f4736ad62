"""Provenance primitives: the digest of a model's files, the signing key and where it comes from, verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepipe.registry.provenance import (
    DIGEST_TAG,
    KEY_FILE_SUFFIX,
    SIGNATURE_TAG,
    ProvenanceError,
    digest_files,
    key_file,
    key_id,
    provenance_tags,
    signing_key,
    verify,
)

KEY = b"k" * 40


def _model(root: Path) -> Path:
    (root / "artifacts/policy").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "artifacts/policy/policy.json").write_text('{"blend": {"sac": 1.0}}')
    return root


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEPIPE_SIGNING_KEY", raising=False)


def test_digest_covers_every_path_and_byte(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    before = digest_files(model)
    assert digest_files(model) == before and len(before) == 64
    (model / "MLmodel").write_text("flavors: {}\n ")
    assert digest_files(model) != before
    (model / "MLmodel").write_text("flavors: {}\n")
    assert digest_files(model) == before
    (model / "artifacts/policy/policy.json").rename(model / "artifacts/policy.json")  # same bytes, other path
    assert digest_files(model) != before
    (model / "artifacts/policy.json").rename(model / "artifacts/policy/policy.json")
    (model / "extra.py").write_text("")
    assert digest_files(model) != before


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    (model / "link").symlink_to("/etc/hostname")
    with pytest.raises(ProvenanceError) as err:
        digest_files(model)
    assert err.value.reason == "unsafe_file"


def test_verify_accepts_the_signed_files_only(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    tags = provenance_tags(KEY, digest_files(model))
    assert verify(tags, model, KEY, "v1") == tags[DIGEST_TAG]
    for bad_tags, reason in [({}, "unsigned"), ({DIGEST_TAG: tags[DIGEST_TAG]}, "unsigned"),
                             ({**tags, SIGNATURE_TAG: "0" * 64}, "bad_signature"),
                             ({**tags, DIGEST_TAG: "1" * 64}, "bad_signature")]:
        with pytest.raises(ProvenanceError) as err:
            verify(bad_tags, model, KEY, "v1")
        assert err.value.reason == reason
    with pytest.raises(ProvenanceError) as other_key:
        verify(tags, model, b"o" * 40, "v1")
    assert other_key.value.reason == "bad_signature" and key_id(KEY) in str(other_key.value)
    (model / "MLmodel").write_text("loader_module: os\n")
    with pytest.raises(ProvenanceError) as altered:
        verify(tags, model, KEY, "v1")
    assert altered.value.reason == "digest_mismatch"


def test_a_local_registry_gets_a_private_key_file_on_first_registration(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert key_file(uri) == tmp_path / f"mlflow.db{KEY_FILE_SUFFIX}"
    with pytest.raises(ProvenanceError) as missing:
        signing_key(uri)  # verifying never invents a key
    assert missing.value.reason == "no_signing_key" and "does not exist" in str(missing.value)
    key = signing_key(uri, create=True)
    path = tmp_path / f"mlflow.db{KEY_FILE_SUFFIX}"
    assert path.stat().st_mode & 0o777 == 0o600 and len(key) == 64
    assert signing_key(uri) == signing_key(uri, create=True) == key
    path.chmod(0o644)
    with pytest.raises(ProvenanceError) as loose:
        signing_key(uri)
    assert loose.value.reason == "bad_signing_key" and "chmod 600" in str(loose.value)


def test_a_server_registry_needs_the_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "http://user:secret@mlflow:5000"
    with pytest.raises(ProvenanceError) as missing:
        signing_key(uri, create=True)
    assert missing.value.reason == "no_signing_key" and "TRADEPIPE_SIGNING_KEY" in str(missing.value)
    assert "secret" not in str(missing.value)
    monkeypatch.setenv("TRADEPIPE_SIGNING_KEY", "short")
    with pytest.raises(ProvenanceError) as short:
        signing_key(uri)
    assert short.value.reason == "bad_signing_key" and "short" not in str(short.value)
    monkeypatch.setenv("TRADEPIPE_SIGNING_KEY", "s" * 32)
    assert signing_key(uri) == b"s" * 32
