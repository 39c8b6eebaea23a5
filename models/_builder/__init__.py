"""Private helpers for ``models/build.py``.

The leading underscore keeps the server's repository scanner from treating this directory as a model.
"""
