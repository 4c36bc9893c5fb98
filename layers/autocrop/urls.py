"""Signed crop URLs: any size of a photo's crop, from a URL a CDN caches for good.

    /v1/crops/<key id>.<signature>/<version>/<key, percent-encoded per segment>/<ratio slug>/<W>x<H>.<jpg|webp|png>
    /v1/crops/k1.9Zy...Q/_/2019/summer%20trip/beach.jpg/16x9/1200x675.webp

- signature: HMAC-SHA256 over everything after "<key id>.<signature>/" (version, key, ratio,
  size and format: `CropUrl.path()`), base64url without padding, as thumbor (`/<hmac>/...`)
  and imgproxy (`/<signature>/...`) sign theirs: only whoever holds the key can ask for a
  size, so nobody can make the service render arbitrary ones. It is in the path, not the
  query string, so a CDN's cache key is the path alone.
- key id: which signing key made it (`KeyRing`: the current key and the previous one both
  verify, so rotating the key leaves published URLs working until the next rotation).
- version: the version of the photo's crops (crops.json's "version", which changes whenever
  the photo, its overrides, the models or the output settings change what is cropped), signed
  like the rest, so a new version is a new URL and no cache serves the old crops. "_" where a
  URL names none (the shape before versions). The service answers a URL naming another
  version than the current one with a short-lived redirect to the current URL.

One spelling per crop: the path is exactly `CropUrl.path()`, each key segment written as
`quote(segment, safe="")` (UTF-8, uppercase hex, only A-Z a-z 0-9 _ . - ~ as they are).
Every other spelling of the same signed text (be%61ch.jpg, 2019%2Fsummer, %2f, a raw
space, lowercase hex) is refused wherever it can still be seen: by `parse` of a path as
sent (the local server), and by the CDN's edge function (infra/edge/crop_urls.js, the same
rule in JavaScript). API Gateway's HTTP API hands the function the path already decoded:
there it is read as it comes (`parse(..., decoded=True)`), decoded exactly once.

Keys are at least `MIN_KEY_BYTES` bytes. Stored (SSM Parameter Store, AUTOCROP_URL_SIGNING_KEY,
a key file) as a key ring, JSON `{"current": {"id": "k2", "key": "..."}, "previous": {"id":
"k1", "key": "..."}}`, or as one bare key, which is the current key with id `BARE_KEY_ID`.
Pure functions (no AWS): the API verifies, the CLI and the library sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from .errors import AutocropError, InvalidOptionsError
from .job import EXTENSIONS, ratio_slug
from .options import parse_size, size_is_of_ratio
from .render import output_format

#: Route prefix of crop URLs on the API.
ROUTE = "/v1/crops"
#: The shortest signing key accepted: HMAC-SHA256's own output length (RFC 2104 advises no less).
MIN_KEY_BYTES = 32
#: The id of a key stored or given without one (the format before key ids).
BARE_KEY_ID = "k0"
#: The version slot of a URL that names no version.
NO_VERSION = "_"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_URL = re.compile(
    rf"^(?P<kid>{_KEY_ID.pattern})\.(?P<sig>[A-Za-z0-9_-]{{43}})/(?P<version>[^/]+)/(?P<key>.+)"
    r"/(?P<ratio>\d+(?:\.\d+)?x\d+(?:\.\d+)?)/(?P<w>[1-9]\d{0,4})x(?P<h>[1-9]\d{0,4})\.(?P<ext>jpg|webp|png)$",
    re.DOTALL,  # a key may hold any character, a newline too
)
_MEDIA_EXT = {v: k for k, v in EXTENSIONS.items()}  # "jpg" -> "JPEG"


class SigningKeyError(AutocropError):
    """No usable signing key: none, blank, shorter than MIN_KEY_BYTES, or an unreadable key ring."""

    code = "bad_signing_key"


class NonCanonicalUrlError(InvalidOptionsError):
    """A crop URL path spelled otherwise than `CropUrl.path()` writes it."""

    code = "not_canonical"


@dataclass(frozen=True)
class SigningKey:
    """One URL signing key and the id URLs name it by."""

    id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.id):
            raise SigningKeyError(f"a signing key id is 1 to 32 of A-Z a-z 0-9 _ -, got {self.id!r}")
        if not self.secret.strip():
            raise SigningKeyError(f"signing key {self.id!r} is blank")
        if len(self.secret) < MIN_KEY_BYTES:
            raise SigningKeyError(f"signing key {self.id!r} is {len(self.secret)} bytes, under the {MIN_KEY_BYTES} "
                                  "required (make one with: openssl rand -base64 32)")  # fmt: skip

    @classmethod
    def of(cls, secret: bytes | str, key_id: str = BARE_KEY_ID) -> SigningKey:
        """A key as stored or typed: surrounding whitespace (a file's newline) is not part of it."""
        return cls(key_id, (secret.encode() if isinstance(secret, str) else secret).strip())


@dataclass(frozen=True)
class KeyRing:
    """The key new URLs are signed with, and the one before it, which still verifies."""

    current: SigningKey
    previous: SigningKey | None = None

    def __post_init__(self) -> None:
        if self.previous is not None and self.previous.id == self.current.id:
            raise SigningKeyError(f"the current and previous signing keys share the id {self.current.id!r}")

    @classmethod
    def parse(cls, stored: str | bytes) -> KeyRing:
        """The key ring a stored value holds: JSON {"current": {"id", "key"}, "previous": ...} or one bare key."""
        try:
            text = (stored.decode() if isinstance(stored, bytes) else stored).strip()
        except UnicodeDecodeError:  # raw random bytes (a key file): one bare key
            return cls(SigningKey.of(stored))
        if not text.startswith("{"):  # base64 or hex keys never start with "{"
            return cls(SigningKey.of(text))
        try:
            ring = json.loads(text)
            entries = {name: ring.get(name) for name in ("current", "previous")}
            keys = {name: SigningKey.of(e["key"], e["id"]) if e else None for name, e in entries.items()}
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise SigningKeyError(f"a signing key ring is JSON {{\"current\": {{\"id\": ..., \"key\": ...}}, "
                                  f"\"previous\": ...}}: {type(e).__name__}") from e  # fmt: skip
        if keys["current"] is None:
            raise SigningKeyError("the signing key ring has no current key")
        return cls(keys["current"], keys["previous"])

    def to_json(self) -> str:
        """The stored form (what `parse` reads)."""

        def entry(key: SigningKey | None) -> dict[str, str] | None:
            return {"id": key.id, "key": key.secret.decode()} if key else None

        return json.dumps({"current": entry(self.current), "previous": entry(self.previous)})

    def find(self, key_id: str) -> SigningKey | None:
        """The key of this id, if the ring holds it."""
        return next((k for k in (self.current, self.previous) if k is not None and k.id == key_id), None)

    def rotated(self, secret: bytes | str) -> KeyRing:
        """`secret` becomes the current key (the next id), the current one the previous; the previous goes."""
        number = re.fullmatch(r"k(\d+)", self.current.id)
        new_id = f"k{int(number[1]) + 1}" if number else "k1"
        return KeyRing(SigningKey.of(secret, new_id), self.current)


@dataclass(frozen=True)
class CropUrl:
    """What a crop URL asks for: the crop of `ratio` of the photo `key`, at `size`, in `fmt`
    (of the photo's crops at `version`, where it names one)."""

    key: str
    ratio: str
    size: tuple[int, int]
    fmt: str  # "jpeg", "webp" or "png"
    version: str | None = None

    def path(self) -> str:
        """The signed part, in its one spelling: version, key (each segment percent-encoded), ratio slug, size, extension."""
        key = "/".join(quote(part, safe="") for part in self.key.split("/"))
        ext = EXTENSIONS[output_format(self.fmt)]
        return f"{self.version or NO_VERSION}/{key}/{ratio_slug(self.ratio)}/{self.size[0]}x{self.size[1]}.{ext}"


@dataclass(frozen=True)
class SignedCropUrl:
    """A crop URL read back: the key id and signature it carries, and the request they sign."""

    key_id: str
    signature: str
    request: CropUrl

    def verifies(self, keys: KeyRing) -> bool:
        """Whether a key of `keys` made this signature."""
        key = keys.find(self.key_id)
        return key is not None and verify(self.signature, self.request.path(), key.secret)


def signature(path: str, secret: bytes) -> str:
    """base64url(HMAC-SHA256(secret, path)) without padding."""
    digest = hmac.new(secret, path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(sig: str, path: str, secret: bytes) -> bool:
    """Whether `sig` signs `path` (constant-time comparison)."""
    return hmac.compare_digest(sig.encode(), signature(path, secret).encode())


def crop_url(key: str, ratio: str, size: tuple[int, int], secret: SigningKey | KeyRing | bytes | str, fmt: str = "jpeg",
             base_url: str = "", version: str | None = None) -> str:  # fmt: skip
    """The signed URL of the crop of `ratio` of photo `key` at `size` (checked as the API checks it);
    signed with `secret` (a key ring's current key; a bare key has id BARE_KEY_ID)."""
    signing = secret.current if isinstance(secret, KeyRing) else secret
    signing = signing if isinstance(signing, SigningKey) else SigningKey.of(signing)
    request = CropUrl(key, ratio, size, output_format(fmt).lower(), version)
    check(request)
    path = request.path()
    return f"{base_url.rstrip('/')}{ROUTE}/{signing.id}.{signature(path, signing.secret)}/{path}"


def is_canonical(path: str) -> bool:
    """Whether every segment of `path` (as sent) is spelled as `quote(segment, safe="")` of its
    decoded text, and none is "." or ".." (which browsers and proxies resolve away)."""
    for segment in path.split("/"):
        try:
            text = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return False
        # ("/" in text: %2F would make two key segments one, and split() made them two)
        if segment in (".", "..") or "/" in text or quote(text, safe="") != segment:
            return False
    return True


def parse(path: str, decoded: bool = False) -> SignedCropUrl:
    """The signed request a crop URL's path (what follows ROUTE + "/") names; InvalidOptionsError if none.

    As sent (`decoded` false): only in its one spelling, else NonCanonicalUrlError. Decoded (the
    path as API Gateway hands it over, percent-escapes already decoded): taken as it is, never
    decoded again; the CDN in front has refused every other spelling.
    """
    sent = path
    if not decoded:
        if not is_canonical(sent):
            raise NonCanonicalUrlError("a crop URL has one spelling: each segment percent-encoded as "
                                       "quote(segment, safe='') writes it (uppercase hex, no needless escapes)")  # fmt: skip
        path = "/".join(unquote(segment) for segment in sent.split("/"))
    match = _URL.match(path)
    if match is None:
        raise InvalidOptionsError(
            "a crop URL is .../<key id>.<signature>/<version or _>/<key>/<W>x<H ratio>/<width>x<height>.<jpg|webp|png>"
        )
    version = None if match["version"] == NO_VERSION else match["version"]
    ratio = match["ratio"].replace("x", ":")
    size = (int(match["w"]), int(match["h"]))
    request = CropUrl(match["key"], ratio, size, output_format(_MEDIA_EXT[match["ext"]]).lower(), version)
    check(request)
    if not decoded and sent != f"{match['kid']}.{match['sig']}/{request.path()}":
        raise NonCanonicalUrlError("a crop URL has one spelling: the one autocrop.urls.crop_url writes")
    return SignedCropUrl(match["kid"], match["sig"], request)


def check(request: CropUrl, max_side: int | None = None) -> None:
    """A key a URL can name, a valid version, a valid ratio, a positive size of that ratio, and
    (with `max_side`) not too large."""
    if not request.key:
        raise InvalidOptionsError("a crop URL names a photo: the key is empty")
    if any(part in (".", "..") for part in request.key.split("/")):
        # Browsers and proxies resolve dot segments (%2E too): such a URL would never arrive as signed.
        raise InvalidOptionsError(f"key {request.key!r} has a '.' or '..' segment: no crop URL can name it")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in request.key):
        # The route does not match a line break, and proxies may drop other control
        # characters: such a URL would be signed and never served.
        raise InvalidOptionsError(f"key {request.key!r} holds a control character: no crop URL can name it")
    if request.version is not None and not _VERSION.fullmatch(request.version):
        raise InvalidOptionsError(
            f"a crop version is 1 to 64 of A-Z a-z 0-9 _ -, not starting with _: {request.version!r}"
        )
    w, h = parse_size(f"{request.size[0]}x{request.size[1]}")
    if not size_is_of_ratio((w, h), request.ratio):  # (parse_ratio inside refuses a bad ratio)
        raise InvalidOptionsError(f"size {w}x{h} is not of ratio {request.ratio}")
    if max_side is not None and max(w, h) > max_side:
        raise InvalidOptionsError(f"size {w}x{h} is over this service's maximum side of {max_side} pixels")


__all__ = [
    "BARE_KEY_ID", "MIN_KEY_BYTES", "NO_VERSION", "ROUTE", "CropUrl", "KeyRing", "NonCanonicalUrlError",
    "SignedCropUrl", "SigningKey", "SigningKeyError", "check", "crop_url", "is_canonical", "parse", "signature", "verify",
]  # fmt: skip
