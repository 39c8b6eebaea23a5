"""Coordination between the --workers supervisor and its workers over a two-way pipe.

channel      JSON messages, requests with replies, read from the event loop (both sides)
remote       a worker's side: its Coordinator asks the supervisor; it runs the supervisor's commands
hub          the supervisor's side: fans loads, unloads and routing changes out to every worker,
             owns the routing state file and runs the canary judge on the merged traffic
errors       our exceptions as plain data across the pipe
messages     the judge's targets and verdicts as JSON
"""
