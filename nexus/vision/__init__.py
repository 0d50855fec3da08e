"""Vision operations: image decoding, letterbox, box decoding, NMS and masks."""
