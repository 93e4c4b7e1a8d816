"""Activities of both workflows; `activities.registry` hands them to a worker by role."""
