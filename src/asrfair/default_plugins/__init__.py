"""asrfair's built-in plugins, registered through entry points like any other."""
