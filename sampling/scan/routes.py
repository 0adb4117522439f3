"""HTTP routes of the scan package: decode a photo, check a typed code.

Thin handlers: the upload is read with a byte limit, turned into pixels by
:mod:`sampling.scan.images` (which checks the pixel count from the header
before decoding) and decoded in a worker thread, since decoding is CPU-bound
and must not stall the event loop that serves the scanners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import anyio.to_thread
from litestar import Controller, post
from litestar.datastructures import UploadFile  # noqa: TC002 - Litestar resolves it at runtime
from litestar.params import JSONBody, MultipartBody

from sampling.scan import frames, images, pipeline, typed
from sampling.scan.errors import ImageTooLarge, NoImage, TooManyFrames
from sampling.scan.models import CodeCheckRequest, DecodeResult, TypedCheck

MAX_BODY: Final = (frames.MAX_FRAMES * images.MAX_BYTES) + 64 * 1024
_ROLES: Final = {"roles": ("scanner", "sealer", "admin")}


@dataclass
class DecodeForm:
    """Multipart body: one ``image``, or up to five ``frames`` of one label."""

    image: UploadFile | None = None
    frames: list[UploadFile] = field(default_factory=list)


async def _read(upload: UploadFile, name: str) -> images.Gray:
    # Read one byte past the limit: enough to know it is too large without
    # holding an arbitrarily large body in memory.
    data = await upload.read(images.MAX_BYTES + 1)
    if len(data) > images.MAX_BYTES:
        raise ImageTooLarge(
            f"{name} is larger than {images.MAX_BYTES} bytes.", max_bytes=images.MAX_BYTES
        )
    return images.load(data, name=name)


class ScanController(Controller):
    path = "/v1"
    tags = ["scan"]

    @post("/decode", operation_id="decodeImage", opt=_ROLES, status_code=200,
          request_max_body_size=MAX_BODY)
    async def decode(
        self, data: MultipartBody[DecodeForm]
    ) -> DecodeResult:
        """Read the codes in a photo, or in several frames of one label."""
        uploads = [data.image] if data.image is not None else []
        uploads += data.frames
        if not uploads:
            raise NoImage("Send the photo as `image`, or frames of one label as `frames`.")
        if len(uploads) > frames.MAX_FRAMES:
            raise TooManyFrames(
                f"{len(uploads)} images sent; at most {frames.MAX_FRAMES}.",
                frames=len(uploads), max_frames=frames.MAX_FRAMES,
            )
        pixels = [await _read(u, u.filename or f"frame {i}") for i, u in enumerate(uploads)]
        if data.image is not None and not data.frames:
            return await anyio.to_thread.run_sync(pipeline.decode, pixels[0])
        return await anyio.to_thread.run_sync(frames.decode_frames, pixels)

    @post("/codes/check", operation_id="checkTypedCode", opt=_ROLES, status_code=200)
    async def check_code(self, data: JSONBody[CodeCheckRequest]) -> TypedCheck:
        """Accept a hand-typed code, or refuse it with the reason and likely corrections."""
        return typed.check(data.code)
