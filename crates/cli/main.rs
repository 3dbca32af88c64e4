//! The `liftlab` binary: serve, demo, spec validate, apply, results, simulate, audit verify.

fn main() {
    println!("liftlab");
}
