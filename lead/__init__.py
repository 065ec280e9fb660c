"""What the cell lead runs during the evening: the run-sheet of micro-stage slots."""
