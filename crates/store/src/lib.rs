//! liftlab-store: persistence behind the `Store` trait; the only crate that touches disk.
