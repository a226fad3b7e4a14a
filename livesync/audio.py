"""WAV files and 16-bit PCM for the Live API: read, resample, chunk, write.

The Live API takes raw 16-bit little-endian mono PCM at 16 kHz
(:data:`INPUT_RATE`, what :meth:`Session.send_audio` sends) and answers with
the same format at 24 kHz (:data:`OUTPUT_RATE`, ``Turn.audio`` and
``LiveServerMessage.data``). These helpers turn a WAV file into real-time-sized
chunks of the former and wrap the latter in a WAV container::

    from livesync import audio

    for chunk in audio.wav_chunks("question.wav"):   # 20 ms of 16 kHz PCM each
        session.send_audio(chunk)
    audio.write_wav("answer.wav", turn.audio)        # 24 kHz mono

Standard library only (``struct``, ``array``, ``wave``; not ``audioop``, which
Python 3.13 removed). Every function is pure: it touches no session and no
shared state, may be called from any thread (an audio-device callback
included), and blocks only on the file it reads or writes.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import wave
from array import array
from typing import IO, Final, Iterator, List, Tuple, Union

from .exceptions import InvalidConfig

__all__ = [
    "INPUT_RATE",
    "OUTPUT_RATE",
    "SAMPLE_WIDTH",
    "pcm_to_wav",
    "read_wav",
    "resample",
    "wav_chunks",
    "write_wav",
]

INPUT_RATE: Final = 16000
"""Sample rate (Hz) of the audio the Live API takes (``realtimeInput.audio``)."""

OUTPUT_RATE: Final = 24000
"""Sample rate (Hz) of the audio the Live API sends back."""

SAMPLE_WIDTH: Final = 2
"""Bytes per sample of Live API audio (16-bit signed little-endian, mono)."""

#: Accepted sources: a path, or a binary file object open for reading / writing.
Source = Union[str, "os.PathLike[str]", IO[bytes]]

_WAVE_FORMAT_PCM: Final = 0x0001
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
_FORMAT_NAMES: Final = {
    0x0002: "Microsoft ADPCM",
    0x0003: "32-bit float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0050: "MPEG",
    0x0055: "MP3",
}
_CONVERT_HINT: Final = (
    "livesync.audio reads uncompressed 16-bit PCM WAV (any rate, any number of "
    "channels); convert it first, e.g. "
    "`ffmpeg -i in.wav -ac 1 -ar 16000 -c:a pcm_s16le out.wav`"
)


def read_wav(source: Source) -> Tuple[bytes, int]:
    """Read a 16-bit PCM WAV file; return ``(mono s16le PCM bytes, sample rate)``.

    Files with several channels are mixed down to mono (the mean of the
    channels, rounded toward minus infinity). The rate is returned as found;
    :func:`resample` converts it. Pure; any thread; blocks only to read the file.

    Args:
        source: a path, or a binary file object positioned at the RIFF header.

    Raises:
        InvalidConfig: not a WAV file, or a format other than 16-bit PCM (8-, 24-
            or 32-bit PCM, float, A-law, compressed ...); the message names what
            the file holds.
        OSError: the file cannot be read.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            data = file.read()
    else:
        data = source.read()
    tag, channels, rate, bits, frames = _parse_riff(data)
    if tag != _WAVE_FORMAT_PCM:
        name = _FORMAT_NAMES.get(tag, "format tag 0x%04x" % tag)
        raise InvalidConfig("unsupported WAV encoding: %s; %s" % (name, _CONVERT_HINT),
                            field="wav")
    if bits != 16:
        raise InvalidConfig(
            "unsupported WAV sample size: %d-bit PCM (%d channel(s), %d Hz); %s"
            % (bits, channels, rate, _CONVERT_HINT), field="wav")
    frame_size = SAMPLE_WIDTH * channels
    frames = frames[: len(frames) - len(frames) % frame_size]
    return _mix_to_mono(frames, channels), rate


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Convert mono s16le PCM from ``from_rate`` to ``to_rate`` Hz.

    Linear interpolation between neighbouring samples, rounded to the nearest
    integer. Equal rates return the input unchanged (exact). Good enough for
    speech sent to the Live API; not for music: there is no anti-aliasing
    filter, so when downsampling, content above the new Nyquist frequency
    (8 kHz at 16 kHz) folds back as faint noise. The output has
    ``round(len(samples) * to_rate / from_rate)`` samples; resample a whole
    recording at once rather than chunk by chunk, so no rounding accumulates.
    Pure; any thread; about a second of CPU per minute of 48 kHz audio.

    Raises:
        InvalidConfig: a rate that is not a positive int, or an odd byte count.
    """
    for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise InvalidConfig("%s must be a positive int (Hz), not %r" % (name, rate),
                                field=name)
    samples = _samples(pcm)
    if from_rate == to_rate or not samples:
        return bytes(pcm)
    count = (len(samples) * to_rate + from_rate // 2) // from_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * count))
    for i in range(count):
        # Position i * from_rate / to_rate in the input, as an integer index
        # plus a fraction in units of 1/to_rate, so no float error accumulates.
        index, frac = divmod(i * from_rate, to_rate)
        if index >= last:
            out[i] = samples[last]
            continue
        a = samples[index]
        out[i] = a + ((samples[index + 1] - a) * frac * 2 + to_rate) // (2 * to_rate)
    return _to_bytes(out)


def wav_chunks(source: Source, *, rate: int = INPUT_RATE, chunk_ms: int = 20) -> Iterator[bytes]:
    """Read a WAV file and return its audio as mono s16le chunks for ``send_audio``.

    The file is read, mixed down and resampled to ``rate`` at once (errors
    surface here, not on the first iteration); the iterator then yields
    ``chunk_ms`` milliseconds of audio per chunk (the last one may be shorter).
    20–100 ms chunks are what a microphone delivers; send them at that pace
    for a real-time stream. Pure; any thread.

    Args:
        source: a path or a binary file object.
        rate: the sample rate of the chunks (the Live API's :data:`INPUT_RATE`).
        chunk_ms: milliseconds per chunk, a positive int.

    Raises:
        InvalidConfig: an unsupported file (see :func:`read_wav`) or a bad argument.
    """
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or chunk_ms <= 0:
        raise InvalidConfig("chunk_ms must be a positive int, not %r" % (chunk_ms,),
                            field="chunk_ms")
    pcm, file_rate = read_wav(source)
    pcm = resample(pcm, file_rate, rate)
    size = max(1, rate * chunk_ms // 1000) * SAMPLE_WIDTH
    return iter([pcm[start:start + size] for start in range(0, len(pcm), size)])


def pcm_to_wav(pcm: bytes, sample_rate: int = OUTPUT_RATE) -> bytes:
    """Wrap mono s16le PCM (by default the Live API's 24 kHz output) in a WAV file.

    Pure; any thread; never blocks.

    Raises:
        InvalidConfig: an odd byte count or a bad rate.
    """
    _check_rate(sample_rate)
    _samples(pcm)  # validates the length
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(bytes(pcm))
    return buffer.getvalue()


def write_wav(target: Source, pcm: bytes, sample_rate: int = OUTPUT_RATE) -> None:
    """Write mono s16le PCM (by default 24 kHz, the Live API's output) as a WAV file.

    Any thread; blocks while the file is written; overwrites an existing file.

    Args:
        target: a path, or a binary file object open for writing.
        pcm: the audio, e.g. ``Turn.audio``.
        sample_rate: its rate in Hz.

    Raises:
        InvalidConfig: an odd byte count or a bad rate (nothing is written).
        OSError: the file cannot be written.
    """
    data = pcm_to_wav(pcm, sample_rate)
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            file.write(data)
    else:
        target.write(data)


def _parse_riff(data: bytes) -> Tuple[int, int, int, int, bytes]:
    """Return (format tag, channels, rate, bits per sample, data chunk) of a WAV file.

    A parser of our own rather than :mod:`wave`, so that every Python version
    reads WAVE_FORMAT_EXTENSIBLE files (``wave`` only does from 3.12) and an
    unsupported file gets a message naming its format.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidConfig("not a WAV file (no RIFF/WAVE header); " + _CONVERT_HINT,
                            field="wav")
    fmt = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8:offset + 8 + size]  # a truncated last chunk is kept
        if chunk_id == b"fmt " and len(body) >= 16:
            fmt = body
        elif chunk_id == b"data":
            if fmt is None:
                break
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
                tag = struct.unpack_from("<H", fmt, 24)[0]  # the sub-format GUID's first field
            if channels < 1 or rate < 1:
                raise InvalidConfig("invalid WAV header: %d channel(s), %d Hz"
                                    % (channels, rate), field="wav")
            return tag, channels, rate, bits, body
        offset += 8 + size + (size & 1)  # chunks are padded to an even size
    raise InvalidConfig("invalid WAV file: no 'fmt ' chunk before the 'data' chunk",
                        field="wav")


def _mix_to_mono(frames: bytes, channels: int) -> bytes:
    if channels == 1:
        return bytes(frames)
    samples = _samples(frames)
    columns: List[array[int]] = [samples[c::channels] for c in range(channels)]
    return _to_bytes(array("h", [sum(frame) // channels for frame in zip(*columns)]))


def _samples(pcm: bytes) -> array[int]:
    if len(pcm) % SAMPLE_WIDTH:
        raise InvalidConfig("16-bit PCM must have an even number of bytes, not %d" % len(pcm),
                            field="pcm")
    samples = array("h")
    samples.frombytes(bytes(pcm))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _check_rate(rate: int) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise InvalidConfig("sample_rate must be a positive int (Hz), not %r" % (rate,),
                            field="sample_rate")
