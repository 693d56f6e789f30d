//! hetally-client.
