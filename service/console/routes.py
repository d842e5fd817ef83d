"""The console's pages: importing each module adds its routes to the one blueprint."""

from service.console import news, overview, signing_in  # noqa: F401  (they register routes)
from service.console.blueprint import bp

__all__ = ["bp"]
