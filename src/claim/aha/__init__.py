"""AHA 17-segment model: segment table, orientation (angle origin), per-pixel geometry."""
