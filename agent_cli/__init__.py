"""The agents' CLI behind complete_activity.py: a package, because Python compiles a script
at every run and caches a module's bytecode."""
