"""--workers: N server processes on one gRPC port (SO_REUSEPORT) under a supervisor.

supervisor  the parent: spawns and restarts workers, serves merged /metrics and health
worker      one child process (spawn target): a full App, readiness reported over a pipe
handle      the supervisor's view of one worker: process, pipe, event-loop watchers
ports       reserving the shared port; restarts: the restart budget
"""
