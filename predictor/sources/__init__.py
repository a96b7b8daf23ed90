"""Where texts come from when a client sends a tweet URL instead of text."""
