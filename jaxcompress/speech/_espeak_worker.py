"""A template process that synthesises each request in a fresh fork of itself.

libespeak-ng keeps state between utterances in function-local statics (the
pitch-flutter phase of the wave generator, among others) that neither
``espeak_Terminate`` nor a new ``espeak_Initialize`` resets, so the same text
comes out a few samples different depending on what was spoken before. This
process initialises the engine once and never speaks itself: every request is
served by a forked child, which starts from the same pristine engine state, so
an utterance depends on its request only.

The process imports nothing but the standard library (a small template forks
in a few milliseconds) and must be started as a script::

    python -I -S _espeak_worker.py LIBRARY_PATH DATA_PATH [ipa]

With ``ipa`` the phoneme events carry IPA names instead of eSpeak's mnemonics.

Protocol, one request at a time: a JSON line on stdin
(``{"text", "voice", "rate", "pitch", "range", "wordgap"}``) is answered on
stdout by a JSON header line (``{"ok": true, "num_samples": n, "events": [...]}``
or ``{"ok": false, "error": "..."}``) followed by ``2 * n`` bytes of int16
little-endian audio at the engine's sample rate. A request ``{"phonemize": [texts],
"voice"}`` is answered by ``{"ok": true, "num_samples": 0, "phonemes": [ipa, ...]}``:
each text's IPA from ``espeak_TextToPhonemes``, phones separated by ``_``, words by spaces. The first line the process
writes is ``{"ok": true, "sample_rate": 22050}`` once the engine is ready.

References: eSpeak NG text-to-speech, ``speak_lib.h`` (the C API driven here).
"""

import ctypes
import json
import os
import sys

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_PHONEMES_IPA = 0x02
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "pitch": 3, "range": 4, "wordgap": 7}
_EVENT_WORD, _EVENT_PHONEME = 1, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    # espeak_EVENT; ``sample`` is the event's position in output samples.
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _phonemize(lib, texts):
    """IPA of each text: clauses joined by spaces, phones separated by ``_``."""
    out = []
    for text in texts:
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses = []
        while pointer.value:
            result = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA | (ord("_") << 8))
            if result:
                clauses.append(result.decode("utf-8", "replace"))
        out.append(" ".join(clauses))
    return out


def _synthesise(lib, request, chunks, events):
    """Runs one request in this (child) process; returns (header dict, audio bytes)."""
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        return {"ok": False, "error": f"espeak-ng has no voice {request['voice']!r}"}, b""
    if "phonemize" in request:
        return {"ok": True, "num_samples": 0, "phonemes": _phonemize(lib, request["phonemize"])}, b""
    for name, code in _PARAM.items():
        if request.get(name) is not None:
            lib.espeak_SetParameter(code, int(request[name]), 0)
    text = request["text"].encode("utf-8")
    status = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status != 0 or lib.espeak_Synchronize() != 0:
        return {"ok": False, "error": f"espeak_Synth failed with status {status}"}, b""
    audio = b"".join(chunks)
    return {"ok": True, "num_samples": len(audio) // 2, "events": events}, audio


def main():
    library_path, data_path = sys.argv[1], sys.argv[2]
    ipa = len(sys.argv) > 3 and sys.argv[3] == "ipa"
    lib = ctypes.CDLL(library_path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(),
                                        _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
                                        | (_INIT_PHONEME_IPA if ipa else 0))
    out = sys.stdout.buffer
    if sample_rate <= 0:
        out.write(json.dumps({"ok": False, "error": f"espeak_Initialize failed ({sample_rate})"}).encode() + b"\n")
        out.flush()
        return
    chunks, events = [], []

    def on_audio(wav, num_samples, event_list):
        if num_samples > 0:
            chunks.append(ctypes.string_at(wav, 2 * num_samples))
        i = 0
        while event_list[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            e = event_list[i]
            if e.type == _EVENT_WORD:
                events.append(["word", e.sample, e.text_position, e.length])
            elif e.type == _EVENT_PHONEME:
                name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")
                events.append(["phoneme", e.sample, e.text_position, name])
            i += 1
        return 0

    callback = _CALLBACK(on_audio)  # keep a reference for the lifetime of the engine
    lib.espeak_SetSynthCallback(callback)
    out.write(json.dumps({"ok": True, "sample_rate": sample_rate}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child speaks once and exits without running any cleanup
            os.close(read_end)
            try:
                header, audio = _synthesise(lib, request, chunks, events)
            except BaseException as error:  # report, never hang the parent
                header, audio = {"ok": False, "error": f"{type(error).__name__}: {error}"}, b""
            _write_all(write_end, json.dumps(header).encode() + b"\n" + audio)
            os._exit(0)
        os.close(write_end)
        parts = []
        while True:
            part = os.read(read_end, 1 << 20)
            if not part:
                break
            parts.append(part)
        os.close(read_end)
        os.waitpid(pid, 0)
        reply = b"".join(parts)
        if not reply:
            reply = json.dumps({"ok": False, "error": "the synthesis process died"}).encode() + b"\n"
        out.write(reply)
        out.flush()


if __name__ == "__main__":
    main()
