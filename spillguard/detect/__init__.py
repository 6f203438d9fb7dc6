"""Detection: flatten record batches, match rules column by column, accumulate exact counts."""
