"""Media plane: rtpengine control and the caller audio fork."""
