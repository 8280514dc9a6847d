"""Time segments inside a clip: the detector's boxes linked over the scored frames into tracks,
each track an interval in which one animal is seen (issue 16)."""
