"""Pure logic of accounting: what to record, and reports from recorded usage (no I/O)."""
