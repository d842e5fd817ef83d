"""The console's pages: importing each module adds its routes to the one blueprint."""

from service.console import (  # noqa: F401  (importing a module registers its routes)
    activity_pages,
    attendance_pages,
    meeting_pages,
    member_pages,
    news,
    overview,
    signing_in,
)
from service.console.blueprint import bp

__all__ = ["bp"]
