"""Files in and out: text with `-` for stdin/stdout, checkpoints, tables, images."""
