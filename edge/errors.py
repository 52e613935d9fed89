"""One error tree for the whole project.

Every error a user can cause (bad input file, bad config, damaged bundle, missing weights)
is an ``EdgeError`` whose message says what went wrong and what to do. Commands turn these
into a one-line message and exit status 1; the daemon quarantines the file and goes on.
"""


class EdgeError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(EdgeError):
    """A configuration file or key is wrong. ``key_path`` names the key, e.g. ``mqtt.port``."""

    def __init__(self, message: str, key_path: str = "", source: str = ""):
        self.key_path = key_path
        self.source = source
        where = ": ".join(part for part in (source, key_path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class InputError(EdgeError):
    """An input image or mask cannot be used (unreadable, truncated, wrong size)."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class BundleError(EdgeError):
    """A bundle is damaged, truncated, of an unknown version, or fails a checksum.

    ``section`` names the part of the bundle that is wrong (``header``, ``mask``, ``stream:blade`` …).
    """

    def __init__(self, message: str, section: str = "", bundle: str = ""):
        self.section = section
        self.bundle = bundle
        parts = [p for p in (bundle, f"section {section}" if section else "") if p]
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)


class ModelError(EdgeError):
    """Weights are missing, do not match their recorded hash, or a model is unknown."""


class CodingError(EdgeError):
    """The entropy coder was given parameters it cannot code, or a stream does not decode."""
