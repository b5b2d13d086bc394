"""The engine every step runs on: inventory, transport and facts, plans, the runner, the report."""
