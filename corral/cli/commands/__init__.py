"""One module per command; each has `register(subparsers)` setting `handler` to a function
that takes the parsed arguments and returns the exit code."""
