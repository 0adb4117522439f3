"""Errors of the scan package, all :class:`sampling.errors.BadInput`::

BadInput (400)
├── NotAnImage (415)        bytes that no image decoder accepts
├── ImageTooLarge (413)     too many bytes, or too many pixels by the header
├── TooManyFrames (413)     more frames of one label than we combine
└── NoImage (400)           a request without any image
"""

from __future__ import annotations

from sampling.errors import BadInput


class NotAnImage(BadInput):
    code = "not_an_image"
    status = 415


class ImageTooLarge(BadInput):
    code = "image_too_large"
    status = 413


class TooManyFrames(BadInput):
    code = "too_many_frames"
    status = 413


class NoImage(BadInput):
    code = "no_image"
    status = 400
