//! In-process tests of the JSON API through `liftlab_server::app` over a `MemStore`, one module per area.

mod access;
mod battery;
mod common;
mod flows;
mod model_versions;
mod openapi;
mod signin;
