"""Reports of a load-test run: JSON (machine-readable), Markdown, PNG plots and terminal tables.

Each format lives in its own module; `writer` writes them all after a run, report.json first. Plotting needs
matplotlib (the `loadtest` extra) and imports it only when drawing.
"""
