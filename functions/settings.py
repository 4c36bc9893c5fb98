"""Every setting of the serverless doors, read from AUTOCROP_* environment variables here only.

AWS itself is configured the standard way (AWS_REGION, AWS_ENDPOINT_URL, credentials), so the
same code talks to real S3 or to the local moto stack.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Lambda's synchronous invocation payload limit (request and response), bytes.
LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
#: The image bytes one answer may carry: Lambda's response limit, base64-encoded (by API
#: Gateway for an image, inside the JSON for data URLs: 4 bytes per 3), less room for headers
#: and the JSON around the images. Every door with an answer checks its outputs' worst case
#: (`autocrop.render.encoded_bound`) against it before rendering.
ANSWER_BYTES = (LAMBDA_SYNC_PAYLOAD_LIMIT - 64 * 1024) * 3 // 4


class Settings(BaseSettings):
    """The S3 trigger's and the API's settings (environment variables AUTOCROP_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="AUTOCROP_", frozen=True)

    #: Where uploads land; the API names it in its 413 answer (the way to send big photos).
    input_bucket: str = ""
    #: Where crops, sidecars and error records go.
    output_bucket: str = ""
    #: Outputs are written under <output_prefix>/<source key>/; uploads under it are ignored.
    output_prefix: str = "crops"
    #: Aspect ratios cropped for each upload, "W:H" separated by commas.
    ratios: str = "1:1,16:9,4:5,9:16"
    #: JPEG quality of the crops written to the output bucket.
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    #: Exact output sizes per ratio, "RATIO=WxH" separated by commas ("1:1=1080x1080,
    #: 16:9=1920x1080"); a ratio not named is written at full resolution.
    sizes: str = ""
    #: Never enlarge a crop smaller than its size (it keeps its own resolution, the size's
    #: ratio); without it such a crop is enlarged to the exact size and crops.json says
    #: "upscaled": true.
    no_upscale: bool = False
    #: Uploads larger than this get an error record instead of a crop (bytes).
    max_object_bytes: int = Field(default=50_000_000, gt=0)
    #: Request bodies larger than this get 413 from the API (bytes).
    api_max_body_bytes: int = Field(default=LAMBDA_SYNC_PAYLOAD_LIMIT, gt=0)
    #: Crop URLs (GET /v1/crops/...) are signed with the keys in this SSM parameter (a
    #: SecureString, decrypted; cached for `url_key_max_age` seconds): the deployed way. It holds
    #: a key ring (`autocrop.urls.KeyRing`: JSON with the current and previous key and their ids;
    #: `python -m infra.cli rotate-url-key` writes it) or one bare key of at least 32 bytes.
    url_signing_key_parameter: str = ""
    #: ... or given directly, in the same format (the local stack, tests). Neither, or a key
    #: under 32 bytes: crop URLs answer 503.
    url_signing_key: SecretStr = SecretStr("")
    url_key_max_age: int = Field(default=300, ge=0)
    #: The secret CloudFront sends the API in the X-Autocrop-Origin header, from this SSM
    #: parameter (a String: CloudFormation writes it into the distribution's origin, which
    #: cannot read a SecureString): crop URLs without it answer 403, so the execute-api domain
    #: is no way around the CDN's one-spelling rule and its cache.
    url_origin_secret_parameter: str = ""
    #: ... or given directly. Neither: no header is required (the local stack and tests have
    #: no CDN in front).
    url_origin_secret: SecretStr = SecretStr("")
    #: The largest side a crop URL may ask for (pixels); larger: 400.
    url_max_side: int = Field(default=4096, ge=16, le=16383)
    #: Uploads also write a master (the photo upright, at most `autocrop.master.MASTER_SIDE`
    #: px long, JPEG) that crop URLs render from while it has the pixels; false: neither
    #: writes nor reads one (crop URLs render from the original).
    url_master: bool = True
    #: The SQS queue the API and `python -m infra.cli override` send a photo's regeneration to
    #: (the upload function consumes it: the same job and records as an upload). Unset:
    #: overrides cannot be set through the API (503), as nothing would apply them.
    regenerate_queue_url: str = ""
    #: Where crop URLs are served (the CDN's https://<CropUrlDomain>): the API's answers name
    #: full URLs with it; unset, they are paths (/v1/crops/...) to put after that origin.
    url_base: str = ""
    #: The largest overrides document PUT /v1/photos/<key>/overrides accepts (bytes).
    overrides_max_bytes: int = Field(default=64 * 1024, gt=0)

    @property
    def parsed_sizes(self) -> dict[str, tuple[int, int]]:
        """AUTOCROP_SIZES as {ratio: (W, H)}; a malformed entry raises InvalidOptionsError."""
        from autocrop.errors import InvalidOptionsError
        from autocrop.options import parse_size

        out: dict[str, tuple[int, int]] = {}
        for entry in filter(None, (part.strip() for part in self.sizes.split(","))):
            ratio, sep, size = entry.partition("=")
            if not sep or not ratio.strip():
                raise InvalidOptionsError(f"AUTOCROP_SIZES entries are 'RATIO=WxH', got {entry!r}")
            out[ratio.strip()] = parse_size(size)
        return out

    @property
    def normalised_prefix(self) -> str:
        """The output prefix without leading or trailing slashes ("" means the bucket root)."""
        return self.output_prefix.strip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing env)."""
    return Settings()
