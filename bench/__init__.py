"""The benchmark (`python -m bench.run`) and the soak (`python -m bench.soak`).

run.py orders the phases; each phase is a module of its own (handoff, heartbeats,
http_handoff, decisions, capacity, throughput, lookup, cluster) and takes the run's shared
state (context.Bench). floor.py is the floor's worker process, floor_client.py drives it;
measure.py and pipelines.py are the tools the phases share; report.py holds the rows and
writes docs/benchmarks.md. No module imports run.py.
"""
