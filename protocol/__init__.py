"""paintwire.protocol: the contract between Paintwire's server and its clients.

Sans-I/O (messages, validation, msgpack framing, connection state machines)
plus a small blocking client. Standard library, msgpack and websockets only;
runs on Python 3.10+, so the Krita and GIMP plug-ins can carry it.
"""

from .client import DEFAULT_URL, Client, ClientError, JobCancelled, JobFailed
from .codec import decode_client_message, decode_server_message, encode
from .controls import MAX_CONTROLS, ControlInput, ControlKindSpec, Preprocess, Preprocessed
from .crops import Crop, CropRule
from .connection import ClientConnection, ConnectionState, JobPhase, ServerConnection
from .errors import ErrorCode, ProtocolError
from .form import FormField, FormSection
from .images import Encoding, ImagePayload, PixelFormat, raw_image
from .messages import (
    PROTOCOL_VERSION,
    Cancel,
    Cancelled,
    Capabilities,
    CapabilitiesUpdate,
    DeviceInfo,
    EngineInfo,
    EngineStatus,
    Error,
    Hello,
    JobRequest,
    Layer,
    Limits,
    ModelInfo,
    Preview,
    Progress,
    Queued,
    Recall,
    Rescan,
    Result,
    Started,
    Submit,
    Welcome,
)
from .transfer import TransferOffer, TransferTerms
from .rect import Rect
from .params import InputSpec, ModeSpec, ParamSpec, ParamType, validate_params
from .validation import CheckedControl, CheckedJob, check_control, check_job
from .vocabulary import CHECKPOINT_KINDS, ControlKind, InputKind, ModelKind, ParamGroup, Phase, PlacementKind, Preprocessor, Widget

__version__ = "0.1.0"

__all__ = [
    "CHECKPOINT_KINDS", "DEFAULT_URL", "InputKind", "InputSpec", "ModelKind", "ParamGroup", "PlacementKind", "PROTOCOL_VERSION", "Cancel",
    "Cancelled", "Capabilities", "CapabilitiesUpdate", "CheckedControl", "CheckedJob", "ControlInput", "ControlKind", "ControlKindSpec",
    "MAX_CONTROLS", "Preprocess", "Preprocessed", "Preprocessor", "check_control", "Client", "ClientConnection", "DeviceInfo",
    "Crop", "CropRule", "Rect", "TransferOffer", "TransferTerms", "FormField", "FormSection", "Widget",
    "ClientError", "ConnectionState", "Encoding", "EngineInfo", "EngineStatus", "Error", "ErrorCode", "Hello", "ImagePayload", "JobCancelled",
    "JobFailed", "JobPhase", "JobRequest", "Layer", "Limits", "ModeSpec", "ModelInfo", "ParamSpec", "ParamType", "Phase", "PixelFormat",
    "Preview", "Progress", "ProtocolError", "Queued", "Recall", "Rescan", "Result", "ServerConnection", "Started", "Submit", "Welcome", "check_job",
    "decode_client_message", "decode_server_message", "encode", "raw_image", "validate_params", "__version__",
]
