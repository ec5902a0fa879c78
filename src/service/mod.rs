//! Ready-made services: handlers you can run as they are.

pub mod echo;
