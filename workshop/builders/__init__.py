"""Builders of the data files in ``pipeline/data`` (``make iptc-terms``, ``make train-topics``)."""
