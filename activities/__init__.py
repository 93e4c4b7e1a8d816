"""Activities of both workflows; `all_activities` hands them to the worker."""
