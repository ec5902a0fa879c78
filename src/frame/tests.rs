//! Unit tests of the frame module.
