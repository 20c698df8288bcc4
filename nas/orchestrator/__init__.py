"""The search loop, its executors (local processes, Ray), heartbeats, re-measurement and
replicates, and the live display. Budgets themselves are pure values in nas.budget."""
