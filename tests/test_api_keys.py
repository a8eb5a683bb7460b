"""A server's API key comes from an environment variable or from the system keyring (the real
`keyring` library on its plain-file backend, in a temporary folder), and a missing key is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from glitchview.cli import main
from glitchview.core.verify.engines.keys import KEYRING_SERVICE, ApiKeyError, api_key

URL = "http://127.0.0.1:8000/v1"


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The process's keyring: keyrings.alt's plain-text file, kept in `tmp_path`."""
    keyring = pytest.importorskip("keyring")
    from keyrings.alt.file import PlaintextKeyring

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    backend = PlaintextKeyring()
    monkeypatch.setattr(backend, "file_path", str(tmp_path / "keyring_pass.cfg"), raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield keyring
    keyring.set_keyring(previous)


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GV_KEY_TEST", "secret-1")
    assert api_key("GV_KEY_TEST") == "secret-1"
    monkeypatch.delenv("GV_KEY_TEST")
    with pytest.raises(ApiKeyError, match="GV_KEY_TEST .* is not set"):
        api_key("GV_KEY_TEST")
    assert api_key() == ""


def test_key_from_the_system_keyring(file_keyring, tmp_path: Path) -> None:
    file_keyring.set_password(KEYRING_SERVICE, URL, "secret-2")
    assert any(tmp_path.rglob("*.cfg")), "the key went to the file backend in the temporary folder"
    assert api_key(keyring_url=URL) == "secret-2"
    other = "http://127.0.0.1:9999/v1"
    with pytest.raises(ApiKeyError, match=f"no API key for {other}: store one with `keyring set glitchview {other}`"):
        api_key(keyring_url=other)


def test_the_command_line_takes_the_key_one_way_only(capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", "smollm2", "--server", URL, "--ids", "1", "--api-key-env", "X", "--api-key-keyring"]) == 2
    assert "one way" in capsys.readouterr().err
