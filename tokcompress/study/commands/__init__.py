"""One module per ``tokcompress`` subcommand of the study tooling: ``add_arguments(parser)`` and ``run(args)``."""
