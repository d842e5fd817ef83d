"""Pure mail craft: templates to messages, the SMTP transport. No database, no Flask app."""

from emails.compose import HeaderInjection, Sender, Unsubscribe, compose, new_message_id, render

__all__ = ["HeaderInjection", "Sender", "Unsubscribe", "compose", "new_message_id", "render"]
