"""Where a server's API key comes from: an environment variable or the system keyring, never an
argument, a file of ours, a log or an analysis. The key is read when the engine connects and is held
only by its client."""

from __future__ import annotations

import os

from ...errors import GlitchViewError

KEYRING_SERVICE = "glitchview"  # keyring entries: this service, the server's base URL as the user name


class ApiKeyError(GlitchViewError):
    """The key the user named cannot be found."""


def api_key(env_name: str = "", keyring_url: str = "") -> str:
    """The key from the environment variable `env_name`, else from the system keyring's entry for
    `keyring_url` when given, else no key."""
    if env_name:
        key = os.environ.get(env_name, "")
        if not key:
            raise ApiKeyError(f"the environment variable {env_name} (--api-key-env) is not set")
        return key
    if keyring_url:
        return _from_keyring(keyring_url)
    return ""


def _from_keyring(url: str) -> str:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        raise ApiKeyError("reading the API key from the system keyring needs the keyring package: "
                          "pip install 'glitchview[keyring]'") from None
    try:
        key = keyring.get_password(KEYRING_SERVICE, url)
    except KeyringError as exc:
        raise ApiKeyError(f"the system keyring could not be read ({exc})") from exc
    if not key:
        raise ApiKeyError(f"the system keyring holds no API key for {url}: store one with "
                          f"`keyring set {KEYRING_SERVICE} {url}`")
    return key
