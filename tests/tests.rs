//! Black-box tests of the real `liftlab` binary; one module per area.

mod access;
mod architecture;
mod calibration;
mod cli;
mod durability;
mod fuzz;
mod pages;
mod reliability;
mod replicas;
mod serve;
mod simulate;
mod tamper;

/// The binary under test, driven by the test kit's process harness.
fn liftlab() -> liftlab_testkit::Liftlab {
    liftlab_testkit::Liftlab::at(env!("CARGO_BIN_EXE_liftlab"))
}
