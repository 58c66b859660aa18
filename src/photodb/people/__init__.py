"""Person-level facts derived from their detections."""
