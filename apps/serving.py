"""What a visitor of the demo server may reach: this machine only, pages that exist, one folder tree.

- ``apps/.streamlit/config.toml`` binds the server to 127.0.0.1. To share the demo on a network:
  ``streamlit run apps/Home.py --server.address 0.0.0.0`` (or ``STREAMLIT_SERVER_ADDRESS=0.0.0.0
  make apps``); anyone who can reach the port can then use it, there is no login.
- Visitors may open folders, saved indexes and model folders on the server only under
  ``$ZOO_APPS_ROOT`` (unset: none at all, only uploads, the bundled data and the model folders the
  operator configured). Every typed path goes through :func:`visitor_path`, :func:`model_folder`
  or :func:`class_folders`: paths are resolved (symlinks, ``..``) before the check; a class folder
  or image that resolves outside the root is refused; a saved index may name its model folder
  only under the root or the zoo's cache (:func:`check_index_model`).
- :class:`KnownPagesOnly` answers 404 for URLs that are not a page. Streamlit itself serves its
  single-page app (index.html, 200) for every unknown path and only then, in the browser, says
  "page not found" and shows the default page.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

from zoo.errors import ZooError

ROOT_ENV = "ZOO_APPS_ROOT"


class FolderNotAllowedError(ZooError, PermissionError):
    """A typed server path outside the folder tree this server shares."""


def visitor_root() -> Path | None:
    """The folder tree visitors may browse (``$ZOO_APPS_ROOT``, resolved), or None."""
    value = os.environ.get(ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def inside(path, root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):  # unreadable, symlink loop, NUL byte
        return False


def visitor_path(text: str) -> Path:
    """A typed path checked against the root: relative paths are relative to the root.

    Raises :class:`FolderNotAllowedError` when no root is set or the path resolves outside it.
    """
    root = visitor_root()
    if root is None:
        raise FolderNotAllowedError(
            f"this server does not open folders typed by visitors; to allow it, start the app with "
            f"{ROOT_ENV}=/path/to/images (visitors may then open folders under that path only)")
    text = text.strip()
    p = Path(text).expanduser() if text.startswith("~") else Path(text)
    p = p if p.is_absolute() else root / p
    if not inside(p, root):
        raise _outside(text, root)
    return p.resolve()


def _outside(what, root: Path) -> FolderNotAllowedError:
    return FolderNotAllowedError(f"{what} is outside the folder this server shares ({root}): "
                                 f"enter a folder under {root}")


def model_folder(text: str, configured=()) -> Path:
    """A model folder typed by a visitor: one of the ``configured`` folders (chosen by whoever
    started the server: defaults and environment variables) as it is, anything else through
    :func:`visitor_path`."""
    text = text.strip()
    for c in configured:
        if c and text == str(c).strip():
            return Path(text).expanduser()
    return visitor_path(text)


def class_folders(text: str):
    """``zoo.data.image_folder`` of a typed folder under the root, refusing class folders and images
    that resolve outside it (symlinks) with :func:`visitor_path`'s message."""
    from zoo import data

    folder = visitor_path(text)
    root = visitor_root()
    d = data.image_folder(folder)
    escaped = next((f for f in d.images if not inside(f, root)), None)
    if escaped is not None:
        raise _outside(f"{escaped} (in {text.strip()})", root)
    return d


def check_index_model(index, root: Path | None):
    """Refuse a saved index whose recorded model folder is outside ``root`` and the zoo's cache
    (the index would load that folder as its query model)."""
    from zoo.weights.resolve import zoo_home

    src = (index.model_info or {}).get("source")
    if not src:
        return index
    allowed = [r for r in (root, zoo_home().resolve()) if r is not None]
    if not any(inside(src, r) for r in allowed):
        raise _outside(f"this index's model folder {src}", root or zoo_home())
    return index


# ---- unknown URLs -----------------------------------------------------------------------------
def _base_url() -> str:
    from streamlit import config

    return (config.get_option("server.baseUrlPath") or "").strip("/")


class KnownPagesOnly:
    """ASGI middleware: a 404 page instead of the app's HTML for paths that are not pages.

    Only responses that would be Streamlit's HTML shell (GET/HEAD, 200, text/html) are replaced;
    assets, media, uploads, the health check and the websocket pass untouched.
    ``url_paths``: the pages' URL paths ("" is the default page at the root).
    """

    def __init__(self, app, url_paths, titles=None):
        self.app = app
        self.url_paths = {p.strip("/") for p in url_paths}
        self.titles = dict(titles or {})

    def page_of(self, path: str) -> str | None:
        rel, base = path.strip("/"), _base_url()
        if base:
            if rel != base and not rel.startswith(base + "/"):
                return None
            rel = rel[len(base):].strip("/")
        return rel if rel in self.url_paths else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "/")
        if self.page_of(path) is not None:
            return await self.app(scope, receive, send)
        replaced = False

        async def filtered(message):
            nonlocal replaced
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if message["status"] == 200 and headers.get(b"content-type", b"").startswith(b"text/html"):
                    replaced = True
                    body = self.not_found(path).encode()
                    await send({"type": "http.response.start", "status": 404, "headers": [
                        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-cache")]})
                    await send({"type": "http.response.body",
                                "body": b"" if scope.get("method") == "HEAD" else body})
                    return
            if not replaced:
                await send(message)

        await self.app(scope, receive, filtered)

    def not_found(self, path: str) -> str:
        base = "/" + _base_url() if _base_url() else ""
        links = "".join(f'<li><a href="{html.escape(base)}/{html.escape(p)}">{html.escape(self.titles.get(p, p or "Home"))}'
                        f"</a></li>" for p in sorted(self.url_paths, key=lambda p: (p != "", p)))
        return (f"<!doctype html><title>Page not found</title><h1>No page at {html.escape(path)}</h1>"
                f"<p>The demos are:</p><ul>{links}</ul>")
