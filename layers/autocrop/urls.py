"""Signed crop URLs: any size of a photo's crop, from a URL a CDN caches for good.

    /v1/crops/<signature>/<key, percent-encoded per segment>/<ratio slug>/<W>x<H>.<jpg|webp|png>
    /v1/crops/9Zy...Q/2019/summer%20trip/beach.jpg/16x9/1200x675.webp

The signature is HMAC-SHA256 over everything after it (the path as sent), base64url without
padding, as thumbor (`/<hmac>/...`) and imgproxy (`/<signature>/...`) sign theirs: only
whoever holds the key can ask for a size, so nobody can make the service render arbitrary
ones. The signature is in the path, not the query string, so a CDN's cache key is the path
alone. Pure functions (no AWS): the API verifies, the CLI and the library sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import InvalidOptionsError
from .job import EXTENSIONS, ratio_slug
from .options import parse_size, size_is_of_ratio
from .render import output_format

#: Route prefix of crop URLs on the API.
ROUTE = "/v1/crops"
_TAIL = re.compile(r"^(?P<key>.+)/(?P<ratio>\d+(?:\.\d+)?x\d+(?:\.\d+)?)/(?P<w>[1-9]\d{0,4})x(?P<h>[1-9]\d{0,4})\.(?P<ext>jpg|webp|png)$")
_MEDIA_EXT = {v: k for k, v in EXTENSIONS.items()}  # "jpg" -> "JPEG"


@dataclass(frozen=True)
class CropUrl:
    """What a crop URL asks for: the crop of `ratio` of the photo `key`, at `size`, in `fmt`."""

    key: str
    ratio: str
    size: tuple[int, int]
    fmt: str  # "jpeg", "webp" or "png"

    def path(self) -> str:
        """The signed part: key (each segment percent-encoded), ratio slug, size and extension."""
        key = "/".join(quote(part, safe="") for part in self.key.split("/"))
        ext = EXTENSIONS[output_format(self.fmt)]
        return f"{key}/{ratio_slug(self.ratio)}/{self.size[0]}x{self.size[1]}.{ext}"


def signature(path: str, secret: bytes) -> str:
    """base64url(HMAC-SHA256(secret, path)) without padding."""
    digest = hmac.new(secret, path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(sig: str, path: str, secret: bytes) -> bool:
    """Whether `sig` signs `path` (constant-time comparison)."""
    return hmac.compare_digest(sig.encode(), signature(path, secret).encode())


def crop_url(key: str, ratio: str, size: tuple[int, int], secret: bytes, fmt: str = "jpeg", base_url: str = "") -> str:
    """The signed URL of the crop of `ratio` of photo `key` at `size` (checked as the API checks it)."""
    request = CropUrl(key, ratio, size, output_format(fmt).lower())
    if any(part in ("", ".", "..") for part in key.split("/")):
        # Browsers and proxies collapse dot segments (%2E too) and empty ones: such a URL
        # would never arrive as signed.
        raise InvalidOptionsError(f"key {key!r} has an empty, '.' or '..' segment: no crop URL can name it")
    check(request)
    path = request.path()
    return f"{base_url.rstrip('/')}{ROUTE}/{signature(path, secret)}/{path}"


def parse(path: str, decoded: bool = False) -> CropUrl:
    """The request a signed path (what follows the signature) names; InvalidOptionsError if none.

    `decoded`: the path as a server hands it over (percent-escapes already decoded, as
    Starlette and API Gateway do). The signature is then checked over `CropUrl.path()`, the
    one canonical encoding, so it does not depend on how a proxy re-encodes the URL.
    """
    match = _TAIL.match(path)
    if match is None:
        raise InvalidOptionsError("a crop URL is .../<key>/<W>x<H ratio>/<width>x<height>.<jpg|webp|png>")
    key = match["key"] if decoded else "/".join(unquote(part) for part in match["key"].split("/"))
    ratio = match["ratio"].replace("x", ":")
    size = (int(match["w"]), int(match["h"]))
    request = CropUrl(key, ratio, size, output_format(_MEDIA_EXT[match["ext"]]).lower())
    check(request)
    return request


def check(request: CropUrl, max_side: int | None = None) -> None:
    """A valid ratio, a positive size of that ratio, and (with `max_side`) not too large."""
    w, h = parse_size(f"{request.size[0]}x{request.size[1]}")
    if not size_is_of_ratio((w, h), request.ratio):  # (parse_ratio inside refuses a bad ratio)
        raise InvalidOptionsError(f"size {w}x{h} is not of ratio {request.ratio}")
    if max_side is not None and max(w, h) > max_side:
        raise InvalidOptionsError(f"size {w}x{h} is over this service's maximum side of {max_side} pixels")


__all__ = ["ROUTE", "CropUrl", "check", "crop_url", "parse", "signature", "verify"]
