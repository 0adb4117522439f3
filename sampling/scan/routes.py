"""HTTP routes of the scan package: decode a photo, check a typed code.

Thin handlers: the upload is read with a byte limit, turned into pixels by
:mod:`sampling.scan.images` (which checks the pixel count from the header
before decoding) and decoded in a worker thread, since decoding is CPU-bound
and must not stall the event loop that serves the scanners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, MultipartBody

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.binding.models import OpResult
from sampling.codes import CodeKind
from sampling.errors import BadInput
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


async def _read(upload: object, name: str) -> images.Gray:
    if not isinstance(upload, UploadFile):
        raise NoImage(f"{name} must be sent as a file part (multipart/form-data), not a value.")
    # Read one byte past the limit: enough to know it is too large without
    # holding an arbitrarily large body in memory.
    data = await upload.read(images.MAX_BYTES + 1)
    if len(data) > images.MAX_BYTES:
        raise ImageTooLarge(
            f"{name} is larger than {images.MAX_BYTES} bytes.", max_bytes=images.MAX_BYTES
        )
    return images.load(data, name=name)


@dataclass
class PhotoScanForm:
    """Multipart body of a scan by photo: the photo, and the operation's id and number."""

    image: UploadFile
    op: str
    seq: int


class NoValidCode(BadInput):
    code = "no_valid_code"
    status = 422


class ScanController(Controller):
    path = "/v1"
    tags = ["scan"]
    dependencies = {"device": Provide(current_device)}

    @post(
        "/decode",
        operation_id="decodeImage",
        opt=_ROLES,
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def decode(
        self, data: MultipartBody[DecodeForm], device: NamedDependency[Device]
    ) -> DecodeResult:
        """Read the codes in a photo, or in several frames of one label."""
        uploads = [data.image] if data.image is not None else []
        uploads += data.frames
        if not uploads:
            raise NoImage("Send the photo as `image`, or frames of one label as `frames`.")
        if len(uploads) > frames.MAX_FRAMES:
            raise TooManyFrames(
                f"{len(uploads)} images sent; at most {frames.MAX_FRAMES}.",
                frames=len(uploads),
                max_frames=frames.MAX_FRAMES,
            )
        pixels = [
            await _read(u, getattr(u, "filename", None) or f"frame {i}")
            for i, u in enumerate(uploads)
        ]
        if data.image is not None and not data.frames:
            return await anyio.to_thread.run_sync(pipeline.decode, pixels[0])
        return await anyio.to_thread.run_sync(frames.decode_frames, pixels)

    @post("/codes/check", operation_id="checkTypedCode", opt=_ROLES, status_code=200)
    async def check_code(
        self, data: JSONBody[CodeCheckRequest], device: NamedDependency[Device]
    ) -> TypedCheck:
        """Accept a hand-typed code, or refuse it with the reason and likely corrections."""
        return typed.check(data.code)

    @post(
        "/rounds/{round_id:str}/tubes/{tube:str}/photo-scans",
        operation_id="scanByPhoto",
        opt={"roles": ("scanner", "admin"), "hot": True},
        status_code=200,
        request_max_body_size=images.MAX_BYTES + 64 * 1024,
    )
    async def scan_by_photo(
        self,
        request: Request[Any, Any, Any],
        round_id: FromPath[str],
        tube: FromPath[str],
        data: MultipartBody[PhotoScanForm],
        device: NamedDependency[Device],
    ) -> OpResult:
        """Read the resident's code from a photo and bind it, by the same rules as a scan."""
        pixels = await _read(data.image, getattr(data.image, "filename", None) or "image")
        result = await anyio.to_thread.run_sync(pipeline.decode, pixels)
        residents = sorted(
            {c.text for c in result.codes if c.valid and c.kind is CodeKind.RESIDENT}
        )
        if len(residents) != 1:
            raise NoValidCode(
                "No single valid resident code could be read from the photo"
                + (f" ({len(residents)} found)" if residents else "")
                + ": take another photo, or type the code.",
                found=len(residents),
            )
        binder = services(request).binder
        scanned: OpResult = await binder.scan(
            device, round_id, tube, data.seq, data.op, residents[0]
        )
        return scanned
