"""The ``recall`` message: the server hands a client the settings of a result
from its history (someone pressed "send to Krita" on the server's page).

Only clients that said ``recall: true`` in their hello get it; the client offers
to apply the settings to its form or to open the image (fetched over HTTP from
``image``, with the same token) as a layer. It belongs to no job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .errors import ErrorCode, ProtocolError


@dataclass(frozen=True)
class Recall:
    TYPE: ClassVar[str] = "recall"
    id: int  # the history record
    settings: Mapping[str, Any] = field(default_factory=dict)  # as protocol.metadata describes them
    image: str = ""  # the image's path on the server's address: /api/history/<id>/image
    width: int = 0
    height: int = 0

    def to_wire(self) -> dict:
        return {"type": self.TYPE, "id": self.id, "settings": dict(self.settings), "image": self.image, "width": self.width, "height": self.height}

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Recall":
        # nil is the same as absent, as everywhere in the protocol
        rid = obj.get("id")
        settings = {} if obj.get("settings") is None else obj["settings"]
        image = "" if obj.get("image") is None else obj["image"]
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Field 'id' must be int.", "id")
        if not isinstance(settings, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Field 'settings' must be a map.", "settings")
        if not isinstance(image, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Field 'image' must be str.", "image")
        width, height = obj.get("width") or 0, obj.get("height") or 0
        if not isinstance(width, int) or not isinstance(height, int) or isinstance(width, bool) or isinstance(height, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "Fields 'width' and 'height' must be int.", "width")
        return cls(rid, settings, image, width, height)
