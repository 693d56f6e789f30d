//! hetally-server (filled by the server issue).
