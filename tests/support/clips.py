"""Clips for the video tests, written with PyAV and Pillow directly rather than with ``core.video.codec``, so that
what the codec reads was not made by the codec itself."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy
from PIL import Image

SOUND_RATE = 44_100  # the AAC tone's; Opus takes 48 kHz


def write_test_clip(
    path: Path,
    frames: Sequence[Image.Image],
    container: Literal["mp4", "webm", "gif"],
    *,
    fps: int = 10,
    sound: bool = False,
) -> Path:
    """``frames`` as an H.264 MP4, a VP9 WebM or a GIF at ``fps``; with ``sound``, a tone (AAC in MP4, Opus in WebM)
    as long as the frames."""
    if container == "gif":
        first, *rest = frames
        first.save(path, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)
        return path
    with av.open(str(path), "w", format=container) as output:
        video: Any = output.add_stream("libx264" if container == "mp4" else "libvpx-vp9", rate=fps)
        video.width, video.height = frames[0].size
        video.pix_fmt = "yuv420p"
        audio: Any = None
        encoder, rate = ("aac", SOUND_RATE) if container == "mp4" else ("libopus", 48_000)  # Opus has no 44.1 kHz
        if sound:
            audio = output.add_stream(encoder, rate=rate)
        for index, picture in enumerate(frames):
            frame = av.VideoFrame.from_image(picture.convert("RGB"))
            frame.pts, frame.time_base = index, Fraction(1, fps)
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        if audio is not None:
            seconds = len(frames) / fps
            tone = 0.2 * numpy.sin(2 * numpy.pi * 440 * numpy.arange(int(rate * seconds)) / rate)
            samples = av.AudioFrame.from_ndarray(tone.astype(numpy.float32)[None], format="flt", layout="mono")
            samples.sample_rate = rate
            resampler = av.AudioResampler(format=audio.format.name, layout=audio.layout.name, rate=rate)
            for chunk in resampler.resample(samples):
                output.mux(audio.encode(chunk))
            output.mux(audio.encode(None))
    return path


def clip_streams(path: Path) -> dict[str, Any]:
    """What a written clip holds, read back with PyAV: its video codec, frame count, average rate and size, and its
    sound's codec and seconds (None without sound)."""
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        frames = sum(1 for _ in clip.decode(video))
        facts: dict[str, Any] = {
            "video": video.codec_context.name,
            "frames": frames,
            "rate": video.average_rate,
            "size": (video.codec_context.width, video.codec_context.height),
            "sound": None,
            "sound_seconds": None,
        }
    with av.open(str(path)) as clip:
        if clip.streams.audio:
            sound = clip.streams.audio[0]
            facts["sound"] = sound.codec_context.name
            facts["sound_seconds"] = sum(frame.samples for frame in clip.decode(sound)) / sound.rate
    return facts
