"""How messages, time and HTTP requests reach accounting's handlers."""
