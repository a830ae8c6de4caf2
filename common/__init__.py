"""The small shared library: helpers any app may use. It imports no app of the project."""
