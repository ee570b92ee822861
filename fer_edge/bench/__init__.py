"""``fer-edge benchmark``: size, latency, accuracy and end-to-end FPS per build. Light tier."""
