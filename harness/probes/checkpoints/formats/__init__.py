"""Header readers, one module per checkpoint format: each returns records.CheckpointRead
(files, tensors with dtype, numpy-order shape and byte range, claims) without reading
tensor data, and refuses a truncated or malformed header with one line naming the file and
the byte offset."""
