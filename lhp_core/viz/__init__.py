"""Charts (altair, offline) and live inspectors (ipywidgets) for the book."""
