"""Errors a user can cause. The CLI turns them into one line on stderr and an exit code, never a traceback."""


class AetoolError(Exception):
    """A problem with the user's input or setup (bad path, broken file, wrong option)."""

    exit_code = 2


class DataError(AetoolError):
    """A data folder is missing or does not hold readable IDX files."""


class ModelFileError(AetoolError):
    """A model file is missing, not ONNX, or does not follow aetool's input/output contract."""


class ImageError(AetoolError):
    """An input image cannot be read."""

    exit_code = 1
