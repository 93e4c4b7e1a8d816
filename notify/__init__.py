"""Block notifications: one interface, several backends, failures never fatal."""
