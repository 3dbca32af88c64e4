//! Black-box tests of the real `liftlab` binary; one module per area.

mod access;
mod architecture;
mod calibration;
mod cli;
mod durability;
mod fuzz;
mod harness;
mod pages;
mod reliability;
mod serve;
mod simulate;
mod tamper;
