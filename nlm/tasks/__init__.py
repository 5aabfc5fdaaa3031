"""Tasks: each turns its batches into a loss and evaluates its model, for the one trainer."""
