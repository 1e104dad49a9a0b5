//! Helpers shared by the integration tests. Each test binary uses a different part.
#![allow(dead_code)]

pub mod engine;
pub mod limited_server;
pub mod mock_ghl;
pub mod sandbox;
pub mod sink;
pub mod source;
pub mod spec;
