"""Actions: plan, run, explain, inspect — thin drivers over policy, stores and audit."""
