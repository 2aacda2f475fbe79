from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_LINEAR16: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_MULAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_ALAW: _ClassVar[AudioEncoding]

class SpeechEvent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEECH_EVENT_UNSPECIFIED: _ClassVar[SpeechEvent]
    SPEECH_EVENT_SPEECH_STARTED: _ClassVar[SpeechEvent]
    SPEECH_EVENT_END_OF_UTTERANCE: _ClassVar[SpeechEvent]
    SPEECH_EVENT_NO_INPUT_TIMEOUT: _ClassVar[SpeechEvent]
    SPEECH_EVENT_MAX_LENGTH: _ClassVar[SpeechEvent]
    SPEECH_EVENT_END_OF_AUDIO: _ClassVar[SpeechEvent]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_LINEAR16: AudioEncoding
AUDIO_ENCODING_MULAW: AudioEncoding
AUDIO_ENCODING_ALAW: AudioEncoding
SPEECH_EVENT_UNSPECIFIED: SpeechEvent
SPEECH_EVENT_SPEECH_STARTED: SpeechEvent
SPEECH_EVENT_END_OF_UTTERANCE: SpeechEvent
SPEECH_EVENT_NO_INPUT_TIMEOUT: SpeechEvent
SPEECH_EVENT_MAX_LENGTH: SpeechEvent
SPEECH_EVENT_END_OF_AUDIO: SpeechEvent

class EndpointerConfig(_message.Message):
    __slots__ = ("end_silence_ms", "no_input_timeout_ms", "max_utterance_ms", "pause_ms")
    END_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    NO_INPUT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_MS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_MS_FIELD_NUMBER: _ClassVar[int]
    end_silence_ms: int
    no_input_timeout_ms: int
    max_utterance_ms: int
    pause_ms: int
    def __init__(self, end_silence_ms: _Optional[int] = ..., no_input_timeout_ms: _Optional[int] = ..., max_utterance_ms: _Optional[int] = ..., pause_ms: _Optional[int] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hertz", "call_id", "tenant", "model", "endpointer", "interim_results", "hot_words")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTER_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    HOT_WORDS_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hertz: int
    call_id: str
    tenant: str
    model: str
    endpointer: EndpointerConfig
    interim_results: bool
    hot_words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., call_id: _Optional[str] = ..., tenant: _Optional[str] = ..., model: _Optional[str] = ..., endpointer: _Optional[_Union[EndpointerConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., hot_words: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("transcript", "confidence", "is_final", "speech_event", "audio_offset_ms", "last_voiced_ms", "heard_ms")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    SPEECH_EVENT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_VOICED_MS_FIELD_NUMBER: _ClassVar[int]
    HEARD_MS_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    confidence: float
    is_final: bool
    speech_event: SpeechEvent
    audio_offset_ms: int
    last_voiced_ms: int
    heard_ms: int
    def __init__(self, transcript: _Optional[str] = ..., confidence: _Optional[float] = ..., is_final: _Optional[bool] = ..., speech_event: _Optional[_Union[SpeechEvent, str]] = ..., audio_offset_ms: _Optional[int] = ..., last_voiced_ms: _Optional[int] = ..., heard_ms: _Optional[int] = ...) -> None: ...
