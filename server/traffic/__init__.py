"""Traffic between the versions of a model at run time: which version serves a request, shadow copies."""
