"""The explorer (``python explore.py``): its web server, what it computes for the page, the
training run it watches, and the page itself in ``page/``."""
