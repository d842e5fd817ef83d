"""Flask extensions that are created once and bound to each app by the factory."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Storage comes from WG_RATELIMIT_STORAGE (RATELIMIT_STORAGE_URI) when the app is bound.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
