//! Black-box tests of the real `liftlab` binary; one module per area.

mod architecture;
mod durability;
mod serve;
