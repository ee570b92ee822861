"""``fer-edge serve``: the live demo as a web page served by the package itself. Light tier."""
