"""The console's pages: importing each module adds its routes to the one blueprint."""

from service.console import overview, signing_in  # noqa: F401  (they register their routes)
from service.console.blueprint import bp

__all__ = ["bp"]
