"""Reading and writing clips with PyAV: MP4, WebM and GIF in, MP4 (H.264) or WebM (VP9) out, sound passed through.

A clip is untrusted input, and FFmpeg's demuxers can do more than read one file: playlists (HLS, concat) open
other addresses, MP4 data references point at other files. So the container is chosen from the file's own first
bytes among the three this accepts, FFmpeg is told to open nothing but the file it is given, and every limit is
checked by ``inspect_clip`` before a frame is stylised: bytes and frame size from the header, then seconds and
frames, then one decoding pass that finds a file ending before its clip does. Each refusal is an ``InvalidVideo``
naming the clip and the limit.

Frames are read as RGB pictures and written at a constant frame rate, the clip's average, which keeps its length;
the sound of the original, if any, is copied packet for packet where the output container takes its codec and
re-encoded (AAC in MP4, Opus in WebM) where it does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import av
import av.container
from PIL import Image

from core.errors import EmptyVideo, NotAVideo, TruncatedVideo, VideoTooLarge, VideoTooLong

InputContainer = Literal["mp4", "webm", "gif"]
OutputContainer = Literal["mp4", "webm"]

_NAMES: dict[InputContainer, str] = {"mp4": "MP4", "webm": "WebM", "gif": "GIF"}
# What a written clip is served as.
MEDIA_TYPES: dict[OutputContainer, str] = {"mp4": "video/mp4", "webm": "video/webm"}
# The FFmpeg demuxer each accepted container is read with; never left to FFmpeg's own probing, which would also
# accept playlists that fetch other addresses.
_DEMUXERS: dict[InputContainer, str] = {"mp4": "mp4", "webm": "matroska", "gif": "gif"}
# Open nothing but the file itself: no network protocol, no second file named inside the first.
_DEMUXER_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}
_VIDEO_CODECS: dict[OutputContainer, str] = {"mp4": "libx264", "webm": "libvpx-vp9"}
# Visually lossless for stylised frames at a size a browser plays; VP9's constant-quality mode needs b:v 0.
_VIDEO_OPTIONS: dict[OutputContainer, dict[str, str]] = {
    "mp4": {"crf": "18", "preset": "medium"},
    "webm": {"crf": "30", "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"},
}
_MUXER_OPTIONS: dict[OutputContainer, dict[str, str]] = {"mp4": {"movflags": "+faststart"}, "webm": {}}
# Sound codecs each output container carries as they are; any other is re-encoded to the first of its list.
_AUDIO_CODECS: dict[OutputContainer, tuple[str, ...]] = {"mp4": ("aac", "mp3"), "webm": ("opus", "vorbis")}
_AUDIO_ENCODERS: dict[OutputContainer, str] = {"mp4": "aac", "webm": "libopus"}
# How much earlier than its header says a clip may end before it counts as cut short: half a frame covers the
# rounding of timestamps to the container's time base.
_SHORTFALL_FRAMES = 0.5


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may be at most; every limit is checked before any frame is stylised. The service's and the
    command line's come from the settings (``Settings.clip_limits``), the one place their defaults live."""

    max_bytes: int
    max_seconds: float
    max_frames: int
    max_pixels: int


@dataclass(frozen=True)
class ClipInfo:
    """What ``inspect_clip`` found: the container, one frame's size, the frames the clip decodes to, their average
    rate, and the sound's codec (None for a silent clip)."""

    container: InputContainer
    width: int
    height: int
    frames: int
    frame_rate: Fraction
    audio: str | None

    @property
    def seconds(self) -> float:
        return float(self.frames / self.frame_rate)


def sniff_container(head: bytes) -> InputContainer | None:
    """The accepted container the file's first bytes announce, or None: an ISO media ``ftyp`` box (MP4, MOV), the
    EBML magic (WebM, Matroska), or a GIF signature."""
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def inspect_clip(path: Path, limits: ClipLimits, *, name: str = "clip") -> ClipInfo:
    """Check ``path`` against ``limits`` and read what the frames are, or raise the ``InvalidVideo`` that says why not.

    Cheap checks first (bytes, container, frame size, declared length), then one pass that decodes every frame
    without keeping it, stopping as soon as a limit is passed: a clip accepted here decodes to the end.
    """
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise VideoTooLarge(f"{name} is {size:,} bytes; the limit is {limits.max_bytes:,}")
    container = _sniffed(path, name)
    with _opened(path, container, name) as source:
        stream = _video_stream(source, name)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_pixels:
            raise VideoTooLarge(
                f"{name} has frames of {width}×{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}"
            )
        rate = _frame_rate(stream)
        declared = _declared_seconds(source, stream)
        if declared is not None and declared > limits.max_seconds + 1 / rate:
            raise VideoTooLong(f"{name} lasts {declared:.1f} s; the limit is {limits.max_seconds:g} s")
        frames, end = _count_frames(source, stream, limits, name)
        audio = source.streams.audio[0].codec_context.name if source.streams.audio else None
    expected = declared if container != "gif" else None  # a GIF's length is what FFmpeg found reading it
    if frames == 0 and not expected:
        raise EmptyVideo(f"{name} holds no frame")
    if frames / rate > limits.max_seconds + 1 / rate:
        raise VideoTooLong(f"{name} lasts {float(frames / rate):.1f} s; the limit is {limits.max_seconds:g} s")
    if expected is not None and (end or 0.0) < expected - _SHORTFALL_FRAMES / rate:
        raise TruncatedVideo(
            f"{name} is truncated: it breaks off at {end or 0.0:.2f} s of the {expected:.2f} s it declares"
        )
    if container == "gif" and not _gif_ends(path):
        raise TruncatedVideo(f"{name} is truncated: the GIF ends without its trailer")
    return ClipInfo(container, width, height, frames, rate, audio)


def read_frames(path: Path, *, name: str = "clip", skip: int = 0) -> Iterator[Image.Image]:
    """The clip's frames in order as RGB pictures, after the first ``skip`` of them (a resumed clip's)."""
    with _opened(path, _sniffed(path, name), name) as source:
        for index, frame in enumerate(_decoded(source, _video_stream(source, name), name)):
            if index >= skip:
                yield frame.to_image().convert("RGB")


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size ``write_clip`` writes frames of ``size`` at: each side cropped to an even number (4:2:0 chroma
    halves both)."""
    width, height = size
    return width // 2 * 2, height // 2 * 2


def frame_rate(path: Path, *, name: str = "clip") -> Fraction:
    """The clip's average frame rate, from its header: the rate ``write_clip`` keeps it at."""
    with _opened(path, _sniffed(path, name), name) as source:
        return _frame_rate(_video_stream(source, name))


def write_clip(
    frames: Iterable[Image.Image],
    path: Path,
    container: OutputContainer,
    frame_rate: Fraction,
    *,
    sound_from: Path | None = None,
) -> int:
    """Encode ``frames`` at ``frame_rate`` into ``path``, with the sound of the clip at ``sound_from`` if it has any.

    The frames share the first one's size, cropped to even sides (4:2:0 chroma halves both). Returns how many frames
    were written.
    """
    pictures = iter(frames)
    first = next(pictures, None)
    if first is None:
        raise ValueError("write_clip needs at least one frame")
    with ExitStack() as stack:
        output = stack.enter_context(av.open(str(path), "w", format=container, options=_MUXER_OPTIONS[container]))
        # Every stream is added before the first packet: the header, written then, lists them all.
        video: Any = output.add_stream(_VIDEO_CODECS[container], rate=frame_rate, options=_VIDEO_OPTIONS[container])
        video.width, video.height = even_size(first.size)
        video.pix_fmt = "yuv420p"
        sound = None
        if sound_from is not None:
            source = stack.enter_context(_opened(sound_from, _sniffed(sound_from, "sound source"), "sound source"))
            sound = _Sound.added(source, output, container)
        written = 0
        for image in chain([first], pictures):
            frame = av.VideoFrame.from_image(image.convert("RGB").crop((0, 0, video.width, video.height)))
            frame.pts = written
            frame.time_base = 1 / frame_rate
            output.mux(video.encode(frame))
            written += 1
        output.mux(video.encode(None))
        if sound is not None:
            sound.write()
    return written


@dataclass(frozen=True)
class _Sound:
    """The first sound stream of a clip, on its way into an output: copied packet for packet where the output's
    container carries its codec, else decoded and encoded again with the container's own."""

    source: av.container.InputContainer
    stream: Any
    output: av.container.OutputContainer
    target: Any
    resampler: av.AudioResampler | None

    @classmethod
    def added(
        cls, source: av.container.InputContainer, output: av.container.OutputContainer, container: OutputContainer
    ) -> _Sound | None:
        """The sound of ``source`` with its stream added to ``output``; None for a silent clip."""
        if not source.streams.audio:
            return None
        stream = source.streams.audio[0]
        if stream.codec_context.name in _AUDIO_CODECS[container]:
            return cls(source, stream, output, output.add_stream_from_template(stream), None)
        encoder = av.codec.Codec(_AUDIO_ENCODERS[container], "w")
        rates = encoder.audio_rates or ()
        rate = stream.rate if not rates or stream.rate in rates else max(rates)
        layout = "stereo" if stream.layout.nb_channels >= 2 else "mono"
        target: Any = output.add_stream(encoder.name, rate=rate)
        target.layout = layout
        sample_format = encoder.audio_formats[0].name if encoder.audio_formats else "fltp"
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
        return cls(source, stream, output, target, resampler)

    def write(self) -> None:
        """Every packet of the sound into the output, after the video's."""
        if self.resampler is None:
            for packet in self.source.demux(self.stream):
                if packet.dts is not None:  # the demuxer's closing empty packet
                    packet.stream = self.target
                    self.output.mux(packet)
            return
        for frame in self.source.decode(self.stream):
            for resampled in self.resampler.resample(frame):
                self.output.mux(self.target.encode(resampled))
        for resampled in self.resampler.resample(None):
            self.output.mux(self.target.encode(resampled))
        self.output.mux(self.target.encode(None))


def _sniffed(path: Path, name: str) -> InputContainer:
    with path.open("rb") as file:
        container = sniff_container(file.read(16))
    if container is None:
        raise NotAVideo(f"{name} is not an MP4, WebM or GIF clip")
    return container


@contextmanager
def _opened(path: Path, container: InputContainer, name: str) -> Iterator[av.container.InputContainer]:
    try:
        source = av.open(str(path), "r", format=_DEMUXERS[container], options=_DEMUXER_OPTIONS)
    except av.FFmpegError as error:
        raise TruncatedVideo(
            f"{name} looks like {_NAMES[container]} but cannot be opened; it may be cut short or damaged "
            f"({error.strerror})"
        ) from error
    with source:
        yield source


def _video_stream(source: av.container.InputContainer, name: str) -> Any:
    if not source.streams:  # an MP4 whose index (written last unless moved to the front) never arrived
        raise TruncatedVideo(f"{name} lists no stream at all; it may be cut short or damaged")
    if not source.streams.video:
        raise NotAVideo(f"{name} has no video stream")
    stream = source.streams.video[0]
    if stream.codec_context.width <= 0 or stream.codec_context.height <= 0:
        raise NotAVideo(f"{name} has a video stream without a frame size")
    return stream


def _frame_rate(stream: Any) -> Fraction:
    """The clip's average frame rate, the rate it is written back at; a missing or absurd one is refused."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or not 0 < rate <= 240:
        raise NotAVideo("the clip declares no usable frame rate")
    return Fraction(rate)


def _declared_seconds(source: av.container.InputContainer, stream: Any) -> float | None:
    """How long the header says the video lasts: its stream's duration, or the length Matroska tags it with, or the
    container's when it holds nothing else (a container's covers its sound too); None if none of them says."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tagged = _clock_seconds(stream.metadata.get("DURATION", ""))
    if tagged is not None:
        return tagged
    if source.duration is not None and len(source.streams) == 1:
        return source.duration / av.time_base
    return None


def _clock_seconds(text: str) -> float | None:
    """Seconds in an ``HH:MM:SS.fraction`` tag, or None if the text is not one."""
    parts = text.split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes, seconds = map(float, parts)
    except ValueError:
        return None
    total = hours * 3600 + minutes * 60 + seconds
    return total if math.isfinite(total) and total >= 0 else None


def _count_frames(
    source: av.container.InputContainer, stream: Any, limits: ClipLimits, name: str
) -> tuple[int, float | None]:
    """Decode every frame once, keeping none: how many there are and where the last one ends, in seconds."""
    frames, end = 0, None
    for frame in _decoded(source, stream, name):
        frames += 1
        if frames > limits.max_frames:
            raise VideoTooLong(f"{name} has more than {limits.max_frames:,} frames, the limit")
        if frame.pts is not None and frame.time_base is not None:
            length = frame.duration if frame.duration else 0
            end = float((frame.pts + length) * frame.time_base)
    if end is not None and stream.start_time is not None and stream.time_base is not None:
        end -= float(stream.start_time * stream.time_base)
    return frames, end if end is None or math.isfinite(end) else None


def _decoded(source: av.container.InputContainer, stream: Any, name: str) -> Iterator[av.VideoFrame]:
    """The stream's frames as FFmpeg decodes them; a file it cannot decode to the end is a ``TruncatedVideo``."""
    try:
        yield from source.decode(stream)
    except av.FFmpegError as error:
        raise TruncatedVideo(f"{name} is truncated or damaged: decoding stopped ({error.strerror})") from error


def _gif_ends(path: Path) -> bool:
    """Whether the GIF closes with its trailer byte, which a file cut short lacks."""
    with path.open("rb") as file:
        file.seek(-1, 2)
        return file.read(1) == b";"
