"""Typed errors raised by the engine, each carrying a stable code and a message a user can act on.

The hierarchy, drawn as a tree::

    RestyleError
    ├── InvalidImage            the bytes cannot be used as a picture
    │   ├── NotAnImage          not a format Pillow can decode
    │   ├── TruncatedImage      the file ends before the picture does
    │   ├── ImageTooLarge       more pixels than allowed (decompression bombs land here)
    │   └── ImageTooSmall       a side shorter than the network can see
    ├── InvalidVideo            the bytes cannot be used as a clip
    │   ├── NotAVideo           not an MP4, WebM or GIF clip with a video stream PyAV can decode
    │   ├── TruncatedVideo      the file ends before the clip does, or breaks off mid-stream
    │   ├── EmptyVideo          a clip with no frame
    │   ├── VideoTooLong        more seconds or frames than allowed
    │   └── VideoTooLarge       more bytes, or frames of more pixels, than allowed
    ├── InvalidRequest          parameters that are valid alone but not together (e.g. blend vs styles)
    │   └── InvalidMask         a spatial-control mask that cannot steer its style
    │       ├── MaskAllBlack        a mask with no pixel above black: its style would paint nothing
    │       └── MaskCountMismatch   masks that do not pair one to one with the styles
    ├── DeviceUnavailable       the requested torch device is not a device, or is not present
    ├── MemoryBudgetTooSmall    not even the smallest tile of the picture fits the memory budget
    ├── WeightsError            the VGG weights cannot be loaded
    │   ├── WeightsNotFound     the requested weights are neither cached nor at the path given
    │   └── WeightsMismatch     the file holds no VGG16 or VGG19 weights of the right shapes
    └── Cancelled               the caller asked the run to stop

Shells map these to their own vocabulary in one place each (HTTP problems in the API, job failures in the
worker, exit codes in the CLI); the ``code`` is what clients should branch on, the message is for people.
"""

from __future__ import annotations


class RestyleError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "restyle_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(RestyleError):
    """An uploaded or given file cannot serve as a content or style image."""

    code = "invalid_image"


class NotAnImage(InvalidImage):
    """The bytes are not in any image format we can decode."""

    code = "not_an_image"


class TruncatedImage(InvalidImage):
    """The image header is fine but the pixel data stops early."""

    code = "truncated_image"


class ImageTooLarge(InvalidImage):
    """The declared pixel count exceeds the limit; checked before decoding, so bombs never expand."""

    code = "image_too_large"


class ImageTooSmall(InvalidImage):
    """A side is too short for the network: under ``core.images.MIN_SIDE``, or too short, at the smallest size
    the run scales it to, to reach the deepest layer in use through the pooling stages before it."""

    code = "image_too_small"


class InvalidVideo(RestyleError):
    """An uploaded or given file cannot serve as a clip to stylise (``core.video.codec``)."""

    code = "invalid_video"


class NotAVideo(InvalidVideo):
    """Not an MP4, WebM or GIF file, or one without a video stream that can be decoded."""

    code = "not_a_video"


class TruncatedVideo(InvalidVideo):
    """The container's header promises more than the file holds, or decoding breaks off mid-stream."""

    code = "truncated_video"


class EmptyVideo(InvalidVideo):
    """A clip that decodes to no frame at all."""

    code = "empty_video"


class VideoTooLong(InvalidVideo):
    """More seconds or more frames than allowed; found before any frame is stylised."""

    code = "video_too_long"


class VideoTooLarge(InvalidVideo):
    """A file of more bytes, or frames of more pixels, than allowed; checked before any frame is decoded."""

    code = "video_too_large"


class InvalidRequest(RestyleError):
    """Parameters that pass field validation but contradict the inputs (e.g. blend weights vs styles)."""

    code = "invalid_request"


class InvalidMask(InvalidRequest):
    """A mask given for spatial control (``core.masks``) cannot steer its style; the message names the style by
    its 1-based number, as a request lists them."""

    code = "invalid_mask"


class MaskAllBlack(InvalidMask):
    """A mask with no pixel above black: on the photo its style would paint nowhere, on the painting it would
    draw its statistics from nowhere. Refused rather than silently ignored, since it is almost always a mask
    given to the wrong style or saved inverted."""

    code = "mask_all_black"


class MaskCountMismatch(InvalidMask):
    """More masks than styles, or a mask tied to a style that was not sent."""

    code = "mask_count_mismatch"


class DeviceUnavailable(RestyleError):
    """The torch device named in the request or the settings cannot run the engine here (no CUDA, bad name)."""

    code = "device_unavailable"


class MemoryBudgetTooSmall(RestyleError):
    """The run cannot be bounded by the memory budget: found before any work, so nothing is half done."""

    code = "memory_budget_too_small"


class WeightsError(RestyleError):
    """The network weights cannot be used."""

    code = "weights_error"


class WeightsNotFound(WeightsError):
    """The requested weights are neither in the local cache nor at the path given (loading never downloads)."""

    code = "weights_not_found"


class WeightsMismatch(WeightsError):
    """A weights file exists but does not hold VGG16 or VGG19 convolution weights of the expected shapes."""

    code = "weights_mismatch"


class Cancelled(RestyleError):
    """Raised from inside the optimisation loop when the caller's cancellation check fires."""

    code = "canceled"
