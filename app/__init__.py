"""The application: the one command line, the assembled pipeline and the demo, above every other package."""
