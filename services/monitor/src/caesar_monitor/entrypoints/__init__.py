"""How messages, time and HTTP requests reach the monitor's handlers."""
