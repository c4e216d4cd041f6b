"""``caesar``: the command-line client of caesar-rest."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("caesar-cli")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"
