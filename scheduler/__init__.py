"""The clock: APScheduler runs thin jobs that call service operations."""
