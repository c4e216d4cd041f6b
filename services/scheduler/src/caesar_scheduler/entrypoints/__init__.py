"""How messages, time and HTTP requests reach the scheduler's handlers."""
