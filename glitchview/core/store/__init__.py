"""What is written and read back: analysis files, exports, atomic writes, safe text."""
