"""Safe file I/O: private atomic writes, and bounded reads of YAML we did not write."""
