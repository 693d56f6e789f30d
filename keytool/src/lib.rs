//! hetally-keytool.
