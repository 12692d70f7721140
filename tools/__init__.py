"""Command-line tools: `python -m tools.<name>` (download_weights, make_standin_weights, train, convert, demo)."""
