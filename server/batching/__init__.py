"""Dynamic batching: a bounded priority queue, tensor merge/split, and the scheduler that joins them."""
