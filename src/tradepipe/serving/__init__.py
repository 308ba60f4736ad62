"""FastAPI service answering target weights from the champion trading policy, with hot reload."""

from tradepipe.serving.app import create_app
from tradepipe.serving.models import ModelHolder, ModelRef, ReloadError, ReloadResult, ServedModel

__all__ = ["ModelHolder", "ModelRef", "ReloadError", "ReloadResult", "ServedModel", "create_app"]
