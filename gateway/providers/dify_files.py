"""What a Dify app accepts as files, read from ``/parameters``, and a file's Dify ``type``.

Reference: shared/reference/dify-typebot.md §A1 (``files``, extension sets), §A3
(``/files/upload``, ``/parameters``). Dify checks every ``files`` item against the app's
``file_upload`` settings and fails the whole run on one it refuses, so BitBot checks first and
leaves out what the app would refuse. When the feature is off Dify ignores ``files``, so nothing
is fetched at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MB = 1024 * 1024
LOCAL_FILE = "local_file"
CUSTOM = "custom"

_IMAGE = frozenset({"jpg", "jpeg", "png", "webp", "gif", "svg"})
_VIDEO = frozenset({"mp4", "mov", "mpeg", "webm"})
_AUDIO = frozenset({"mp3", "m4a", "wav", "amr", "mpga"})
# Dify's default extractor's set, plus what the Unstructured extractor adds: a deployment without
# it refuses those as documents, and the run is then retried without files (DifyAdapter).
_DOCUMENT = frozenset(
    {"txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv", "vtt"}
    | {"properties", "doc", "eml", "msg", "pptx", "ppt", "xml", "epub"}
)
_KINDS = (("image", _IMAGE), ("video", _VIDEO), ("audio", _AUDIO), ("document", _DOCUMENT))
# Dify's defaults (MB) when ``system_parameters`` does not say.
_DEFAULT_LIMITS_MB = {"image": 10, "audio": 50, "video": 100, "document": 15, CUSTOM: 15}
_LIMIT_FIELDS = {
    "image": "image_file_size_limit",
    "audio": "audio_file_size_limit",
    "video": "video_file_size_limit",
    "document": "file_size_limit",
    CUSTOM: "file_size_limit",
}
_MAX_FILES = 10  # when the app names no number limit


def extension_of(name: str) -> str:
    """``Report.PDF`` → ``pdf``; no dot → ``""``."""
    stem, dot, extension = name.rpartition(".")
    return extension.lower() if dot and stem else ""


def file_type(name: str) -> str:
    """Dify's ``type`` for a file name: image, document, audio, video, else custom."""
    extension = extension_of(name)
    return next((kind for kind, extensions in _KINDS if extension in extensions), CUSTOM)


@dataclass(frozen=True)
class FileUploads:
    """An app's ``file_upload`` settings; the default is "off"."""

    enabled: bool = False
    types: frozenset[str] = frozenset()  # allowed_file_types; empty: any
    extensions: frozenset[str] = frozenset()  # allowed_file_extensions (for custom), no dot
    number_limit: int = _MAX_FILES
    size_limits: Mapping[str, int] = field(default_factory=dict)  # bytes per Dify type

    def type_for(self, name: str) -> str | None:
        """The ``type`` to send the file as, or None when the app would refuse it."""
        kind = file_type(name)
        if not self.types or kind in self.types:
            return kind
        if CUSTOM in self.types and extension_of(name) in self.extensions:
            return CUSTOM
        return None

    def size_limit(self, kind: str) -> int:
        return self.size_limits.get(kind) or _DEFAULT_LIMITS_MB.get(kind, 15) * MB


NO_UPLOADS = FileUploads()


def parse_file_uploads(parameters: object) -> FileUploads:
    """``file_upload`` and ``system_parameters`` of ``/parameters``; anything unreadable is off."""
    fields = parameters if isinstance(parameters, dict) else {}
    config = fields.get("file_upload")
    if not isinstance(config, dict) or config.get("enabled") is not True:
        return NO_UPLOADS
    methods = config.get("allowed_file_upload_methods")
    if isinstance(methods, list) and methods and LOCAL_FILE not in methods:
        return NO_UPLOADS
    limit = config.get("number_limits")
    return FileUploads(
        enabled=True,
        types=frozenset(_texts(config.get("allowed_file_types"))),
        extensions=frozenset(
            text.lower().lstrip(".") for text in _texts(config.get("allowed_file_extensions"))
        ),
        number_limit=limit if isinstance(limit, int) and limit > 0 else _MAX_FILES,
        size_limits=_size_limits(fields.get("system_parameters")),
    )


def _texts(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _size_limits(system: object) -> dict[str, int]:
    fields = system if isinstance(system, dict) else {}
    limits: dict[str, int] = {}
    for kind, name in _LIMIT_FIELDS.items():
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[kind] = value * MB
    return limits
