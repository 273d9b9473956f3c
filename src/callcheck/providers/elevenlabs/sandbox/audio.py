"""A small, valid MP3 for simulated recordings: an ID3v2.4 tag saying so, then silent MPEG-1 Layer III."""

from __future__ import annotations

# MPEG-1 Layer III, no CRC, 32 kbit/s, 32 kHz, mono: 144 * 32000 / 32000 = 144 bytes per frame, 1152 samples
# (36 ms) each. Integer frame size means no padding bit is ever needed.
_FRAME_HEADER = bytes([0xFF, 0xFB, 0x18, 0xC0])
_SIDE_INFO_BYTES = 17  # mono MPEG-1; all zero = main_data_begin 0 and no Huffman data, i.e. silence
FRAME_BYTES = 144
FRAME_SECS = 1152 / 32000
MAX_AUDIO_SECS = 600  # keep the recording of a pathological call small


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _id3_tag(text: str) -> bytes:
    # One TSSE ("software/settings used for encoding") frame, UTF-8 (encoding 3): marks the audio simulated.
    payload = b"\x03" + text.encode("utf-8")
    frame = b"TSSE" + _syncsafe(len(payload)) + b"\x00\x00" + payload
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def silent_mp3(duration_secs: float) -> bytes:
    """An MP3 of `duration_secs` of silence (at least one frame), tagged as made by the callcheck sandbox."""
    frames = max(1, round(min(duration_secs, MAX_AUDIO_SECS) / FRAME_SECS))
    frame = _FRAME_HEADER + bytes(_SIDE_INFO_BYTES) + bytes(FRAME_BYTES - 4 - _SIDE_INFO_BYTES)
    return _id3_tag("callcheck sandbox (simulated call, silence)") + frame * frames
