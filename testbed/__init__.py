"""The test bed shared by tests/ and bench/: real dev servers, worker processes, simulated
agents and the helpers that drive them."""
