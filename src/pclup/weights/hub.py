"""Models on the Hugging Face Hub, fetched with huggingface_hub.

A repo id is ``owner/name``, optionally pinned with ``@revision`` (a branch, tag or commit hash). Files go
through huggingface_hub's own cache (``HF_HOME`` / ``HF_HUB_CACHE``), so a model downloaded once loads
offline afterwards, ``HF_HUB_OFFLINE=1`` is honoured, and a token comes from ``HF_TOKEN`` or
``huggingface-cli login`` as usual.
"""

from __future__ import annotations

import functools
import re
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..errors import HubError, ModelFileError, first_line

REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<revision>[\w./-]+))?$")


def parse_repo_id(spec: str) -> tuple[str, str | None] | None:
    """``("owner/name", revision or None)`` if ``spec`` has the shape of a Hub repo id, else None."""
    spec = spec.removeprefix("hf://").removeprefix("hf:")
    m = REPO_ID.match(spec)
    if not m or ".." in spec:
        return None
    return m.group("repo"), m.group("revision")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def probe_address(endpoint: str) -> tuple[str, int, bool]:
    """``(host, port, through_proxy)``: where a request to ``endpoint`` first connects.

    The proxy set for the endpoint's scheme (``HTTPS_PROXY`` or ``HTTP_PROXY``, else ``ALL_PROXY``, read as
    huggingface_hub's HTTP client reads them), unless there is none or ``NO_PROXY`` covers the host; then
    the endpoint itself.
    """
    url = urlparse(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(f"{host}:{port}" if url.port else host):
        return host, port, False
    proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    default = 443 if proxy_url.scheme == "https" else 1080 if proxy_url.scheme.startswith("socks") else 80
    return proxy_url.hostname or "", proxy_url.port or default, True


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint (or the proxy that reaches it) accepts a connection, probed once per process.

    huggingface_hub retries a failed request five times with back-off (about 20 s) before it falls back
    to the cache; a machine with no network is told at once instead, and uses its cache.
    """
    from huggingface_hub import constants

    host, port, _ = probe_address(constants.ENDPOINT)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_file(repo_id: str, filename: str, revision: str | None = None, repo_type: str = "model") -> Path:
    """Path of ``filename`` of ``repo_id`` at ``revision`` in the local cache, downloading it if needed.

    Raises:
        HubError: offline (or the Hub unreachable) and not cached; no such repo, revision or file;
            no access.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}@{revision}" if revision else repo_id
    local_only = _offline() or not hub_reachable()
    try:
        return Path(
            hf_hub_download(
                repo_id, filename, revision=revision, repo_type=repo_type, local_files_only=local_only
            )
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        from huggingface_hub import constants

        host, port, proxied = probe_address(constants.ENDPOINT)
        why = (
            "the machine is offline (HF_HUB_OFFLINE is set)"
            if _offline()
            else f"the machine is offline ({'the proxy ' if proxied else ''}{host}:{port} cannot be reached)"
        )
        raise HubError(
            f"cannot get {filename} of Hub repo '{at}': {why} and it is not in the cache "
            f"({constants.HF_HUB_CACHE}); download it once with network, or give a local model folder"
        ) from None
    except GatedRepoError:
        raise HubError(f"Hub repo '{repo_id}' is gated: accept its terms and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise HubError(f"Hub repo '{repo_id}' does not exist or needs a token (set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise HubError(f"Hub repo '{repo_id}' has no revision '{revision}'") from None
    except EntryNotFoundError:
        raise HubError(f"Hub repo '{at}' has no file {filename}") from None
    except HfHubHTTPError as e:
        raise HubError(f"cannot get {filename} of Hub repo '{at}': {first_line(e)}") from None
    except OSError as e:
        raise HubError(f"cannot get {filename} of Hub repo '{at}': {e.strerror or e}") from None


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """Path of the file in the local Hub cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except (ValueError, OSError):
        return None
    return Path(found) if isinstance(found, str) else None


def hub_config(repo_id: str, revision: str | None) -> tuple[dict[str, object], Path]:
    """The repo's ``config.json``, parsed, and its cached path."""
    from .formats import CONFIG_NAME, read_config

    path = hub_file(repo_id, CONFIG_NAME, revision)
    try:
        return read_config(path), path
    except ModelFileError as e:
        raise HubError(f"Hub repo '{repo_id}': {e}") from None
