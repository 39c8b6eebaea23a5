"""Reports of a load-test run: JSON (machine-readable), Markdown, PNG plots and terminal tables.

Each format lives in its own module; import the one you need (plotting pulls in matplotlib).
"""
