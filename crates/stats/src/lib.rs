//! liftlab-stats: pure statistics over sufficient statistics; no IO, no clock, no global RNG.
