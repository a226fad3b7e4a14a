"""livesync.audio (WAV ↔ PCM, resampling, chunking) and the Turn audio helpers."""

from __future__ import annotations

import base64
import io
import math
import re
import struct
import wave
from array import array
from pathlib import Path
from typing import List

import pytest

import livesync
from livesync import audio


def pcm(samples: List[int]) -> bytes:
    """Little-endian s16 bytes of ``samples`` (independent of livesync's own helpers)."""
    return struct.pack("<%dh" % len(samples), *samples)


def unpcm(data: bytes) -> List[int]:
    return list(struct.unpack("<%dh" % (len(data) // 2), data))


def wav_file(frames: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return buffer.getvalue()


def riff(fmt: bytes, data: bytes, *, extra: bytes = b"") -> bytes:
    """A hand-made RIFF/WAVE file: ``extra`` chunks, then ``fmt `` and ``data``."""
    body = b"WAVE" + extra + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_constants() -> None:
    """The Live API's rates and sample width are named constants."""
    assert (audio.INPUT_RATE, audio.OUTPUT_RATE, audio.SAMPLE_WIDTH) == (16000, 24000, 2)


def test_wav_round_trip_through_bytes_and_files(tmp_path: Path) -> None:
    """pcm_to_wav/write_wav and read_wav round-trip samples and rate exactly."""
    samples = [0, 1, -1, 32767, -32768, 1234, -4321]
    data = audio.pcm_to_wav(pcm(samples), 22050)
    assert audio.read_wav(io.BytesIO(data)) == (pcm(samples), 22050)
    with wave.open(io.BytesIO(data)) as wav:  # a standard WAV file
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.readframes(100) == pcm(samples)
    path = tmp_path / "out.wav"
    audio.write_wav(path, pcm(samples))
    assert audio.read_wav(str(path)) == (pcm(samples), 24000)
    buffer = io.BytesIO()
    audio.write_wav(buffer, pcm(samples), 16000)
    assert audio.read_wav(io.BytesIO(buffer.getvalue())) == (pcm(samples), 16000)


def test_empty_audio_is_a_valid_wav() -> None:
    """Empty PCM gives a WAV file with no frames, read back as empty."""
    assert audio.read_wav(io.BytesIO(audio.pcm_to_wav(b""))) == (b"", 24000)


def test_stereo_is_mixed_down_to_mono() -> None:
    """Each stereo frame becomes the mean of its two samples (floored)."""
    frames = pcm([100, 300, -100, -301, 32767, 32767, -32768, -32768, 1, 0])
    data, rate = audio.read_wav(io.BytesIO(wav_file(frames, rate=44100, channels=2)))
    assert rate == 44100
    assert unpcm(data) == [200, -201, 32767, -32768, 0]


def test_multichannel_and_extensible_format() -> None:
    """A WAVE_FORMAT_EXTENSIBLE 4-channel PCM file is read and mixed down, on every Python."""
    guid_pcm = struct.pack("<IHH8s", 1, 0, 0x10, b"\x80\x00\x00\xaa\x00\x38\x9b\x71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 4, 8000, 8000 * 8, 8, 16, 22, 16, 0x33) + guid_pcm
    data = riff(fmt, pcm([4, 8, 12, 16, -4, -4, -4, -4]), extra=b"LIST\x04\x00\x00\x00abcd")
    assert audio.read_wav(io.BytesIO(data)) == (pcm([10, -4]), 8000)


def test_truncated_data_chunk_keeps_whole_frames() -> None:
    """A data chunk cut short (a crashed recorder) yields its complete frames."""
    fmt = struct.pack("<HHIIHH", 1, 2, 16000, 64000, 4, 16)
    data = riff(fmt, pcm([2, 4, 6, 8]))[:-3]  # the header still claims 8 bytes
    assert audio.read_wav(io.BytesIO(data)) == (pcm([3]), 16000)


@pytest.mark.parametrize("width, name", [(1, "8-bit PCM"), (3, "24-bit PCM"), (4, "32-bit PCM")])
def test_other_sample_sizes_are_refused(width: int, name: str) -> None:
    """8-, 24- and 32-bit PCM raise InvalidConfig naming what the file holds."""
    data = wav_file(bytes(width * 2 * 10), rate=48000, channels=2, width=width)
    with pytest.raises(livesync.InvalidConfig, match=name) as info:
        audio.read_wav(io.BytesIO(data))
    assert "2 channel(s), 48000 Hz" in str(info.value)
    assert "16-bit PCM" in str(info.value) and info.value.field == "wav"


@pytest.mark.parametrize("tag, name", [(3, "32-bit float"), (7, "mu-law"), (0x55, "MP3"),
                                       (0x1234, "format tag 0x1234")])
def test_compressed_and_float_formats_are_refused(tag: int, name: str) -> None:
    """Float, companded and compressed WAV files raise InvalidConfig naming the encoding."""
    fmt = struct.pack("<HHIIHH", tag, 1, 16000, 64000, 4, 32)
    with pytest.raises(livesync.InvalidConfig, match=re.escape(name)):
        audio.read_wav(io.BytesIO(riff(fmt, bytes(8))))


@pytest.mark.parametrize("data, message", [
    (b"", "not a WAV file"),
    (b"ID3\x03 this is an mp3", "not a WAV file"),
    (b"RIFF\x04\x00\x00\x00WAVE", "no 'fmt ' chunk"),
    (riff(struct.pack("<HHIIHH", 1, 0, 16000, 0, 0, 16), b""), "0 channel"),
])
def test_broken_files_are_refused(data: bytes, message: str) -> None:
    """Files that are not WAV, or lack a format, raise InvalidConfig."""
    with pytest.raises(livesync.InvalidConfig, match=message):
        audio.read_wav(io.BytesIO(data))


def test_resample_equal_rates_is_exact() -> None:
    """Resampling to the same rate returns the same bytes."""
    data = pcm([5, -5, 32767, -32768])
    assert audio.resample(data, 16000, 16000) == data
    assert audio.resample(b"", 48000, 16000) == b""


@pytest.mark.parametrize("from_rate, to_rate, n_in, n_out", [
    (48000, 16000, 4800, 1600), (44100, 16000, 44100, 16000), (8000, 16000, 100, 200),
    (16000, 24000, 3, 5), (22050, 16000, 1, 1),
])
def test_resample_lengths(from_rate: int, to_rate: int, n_in: int, n_out: int) -> None:
    """The output holds round(n * to / from) samples."""
    out = audio.resample(bytes(2 * n_in), from_rate, to_rate)
    assert len(out) == 2 * n_out


def test_resample_interpolates_linearly() -> None:
    """Upsampling by 2 inserts rounded midpoints; downsampling by 3 keeps every third sample."""
    assert unpcm(audio.resample(pcm([0, 100, -100, 32767]), 8000, 16000)) == [
        0, 50, 100, 0, -100, 16334, 32767, 32767]
    assert unpcm(audio.resample(pcm(list(range(0, 900, 100))), 48000, 16000)) == [0, 300, 600]


def test_resample_keeps_a_tone() -> None:
    """A 440 Hz tone resampled 44.1 → 16 kHz stays within a few units of the ideal tone."""
    tone = [round(8000 * math.sin(2 * math.pi * 440 * i / 44100)) for i in range(4410)]
    out = unpcm(audio.resample(pcm(tone), 44100, 16000))
    ideal = [8000 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(len(out))]
    assert max(abs(a - b) for a, b in zip(out, ideal)) < 30


@pytest.mark.parametrize("args, field", [
    ((b"\x00", 16000, 8000), "pcm"), ((b"", 0, 8000), "from_rate"),
    ((b"", 16000, 16000.0), "to_rate"), ((b"", True, 16000), "from_rate"),
])
def test_resample_errors(args: tuple, field: str) -> None:  # type: ignore[type-arg]
    """Odd byte counts and non-positive or non-int rates raise InvalidConfig."""
    with pytest.raises(livesync.InvalidConfig) as info:
        audio.resample(*args)
    assert info.value.field == field


def test_wav_chunks_are_real_time_sized_at_16k(tmp_path: Path) -> None:
    """A 48 kHz stereo file comes out as 20 ms chunks of 16 kHz mono (640 bytes)."""
    path = tmp_path / "in.wav"
    path.write_bytes(wav_file(pcm([1000, 3000] * 48000), rate=48000, channels=2))
    chunks = list(audio.wav_chunks(path))
    assert len(chunks) == 50 and {len(c) for c in chunks} == {640}
    assert set(unpcm(b"".join(chunks))) == {2000}
    chunks = list(audio.wav_chunks(str(path), rate=24000, chunk_ms=30))
    assert [len(c) for c in chunks] == [1440] * 33 + [48000 - 33 * 1440]


def test_wav_chunks_errors_surface_at_the_call() -> None:
    """An unsupported file or a bad chunk size raises before iteration starts."""
    with pytest.raises(livesync.InvalidConfig, match="24-bit"):
        audio.wav_chunks(io.BytesIO(wav_file(bytes(30), width=3)))
    with pytest.raises(livesync.InvalidConfig, match="chunk_ms"):
        audio.wav_chunks(io.BytesIO(wav_file(b"")), chunk_ms=0)


def test_pcm_to_wav_errors() -> None:
    """Odd byte counts and bad rates raise InvalidConfig; nothing is written."""
    with pytest.raises(livesync.InvalidConfig, match="even number"):
        audio.pcm_to_wav(b"\x00\x01\x02")
    with pytest.raises(livesync.InvalidConfig, match="sample_rate"):
        audio.pcm_to_wav(b"", 0)


def make_turn(**changes: object) -> livesync.Turn:
    fields = dict(text="", audio=b"", transcript="", input_transcript="", tool_calls=(),
                  usage=None, interrupted=False)
    fields.update(changes)
    return livesync.Turn(**fields)  # type: ignore[arg-type]


def test_turn_wav_helpers(tmp_path: Path) -> None:
    """Turn.wav_bytes() and save_wav() wrap the reply audio as 24 kHz mono WAV."""
    turn = make_turn(audio=pcm([1, 2, 3, -4]))
    with wave.open(io.BytesIO(turn.wav_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(10) == pcm([1, 2, 3, -4])
    turn.save_wav(tmp_path / "reply.wav")
    assert (tmp_path / "reply.wav").read_bytes() == turn.wav_bytes()


def test_turn_repr_abbreviates_audio() -> None:
    """repr(Turn) shows the audio's size and duration, not its bytes."""
    text = repr(make_turn(text="hi", audio=bytes(48000)))
    assert "audio=<48000 bytes, 1.00 s>" in text and "\\x00" not in text


def test_turn_html_has_escaped_text_player_and_transcript() -> None:
    """In Jupyter a Turn shows its escaped text, an inline WAV player and the transcripts."""
    call = livesync.FunctionCall(id="1", name="get<weather>", args={"city": "Paris"})
    turn = make_turn(text="a <b>bold</b> & claim", audio=pcm([7, 8]), transcript="<said>",
                     input_transcript="(audio 1.00 s)", tool_calls=(call,), interrupted=True)
    html = turn._repr_html_()
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; claim" in html and "<b>" not in html
    assert "&lt;said&gt;" in html and "(audio 1.00 s)" in html
    assert "get&lt;weather&gt;" in html and "interrupted" in html
    match = re.search(r'<audio controls src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', html)
    assert match and base64.b64decode(match.group(1)) == turn.wav_bytes()


def test_turn_html_without_audio_has_no_player() -> None:
    """A text-only Turn renders without an audio element; an empty one says so."""
    assert "<audio" not in make_turn(text="Paris.")._repr_html_()
    assert "empty turn" in make_turn()._repr_html_()


def test_pure_helpers_leave_input_untouched() -> None:
    """read/resample accept bytes-like input and never modify it."""
    source = bytearray(pcm([1, 2, 3, 4]))
    assert audio.resample(source, 16000, 8000) == pcm([1, 3])
    assert source == bytearray(pcm([1, 2, 3, 4]))
    assert isinstance(audio.resample(memoryview(source), 8000, 8000), bytes)
    assert array("h", [0]).itemsize == 2  # the platform assumption read_wav relies on
