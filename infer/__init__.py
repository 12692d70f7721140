"""RVC training and conversion library."""
