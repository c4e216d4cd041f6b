"""See :mod:`caesar_api.push`."""
