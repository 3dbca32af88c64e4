//! `liftlab spec validate`: checks spec files with the API's own validator and prints every problem for a person.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use liftlab_domain::ExperimentSpec;

/// Work with experiment spec files.
#[derive(clap::Subcommand, Debug)]
pub enum SpecCommand {
    /// Validate spec files exactly as the API does: exit 0 when all are valid, 1 when one is
    /// invalid (every problem printed with its JSON pointer), 2 when one cannot be read.
    Validate(ValidateArgs),
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Spec files (JSON) to validate.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// The outcome of validating one file.
#[derive(Debug, PartialEq)]
pub enum Checked {
    /// The spec is valid; a one-line summary.
    Valid(String),
    /// The spec is invalid: (pointer, message) of every problem.
    Invalid(Vec<(String, String)>),
    /// The file cannot be read.
    Unreadable(String),
}

/// Exit status when every file is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit status when a file is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit status when a file cannot be read.
pub const EXIT_UNREADABLE: i32 = 2;

/// Runs a `spec` subcommand; exits with the status the command documents.
pub fn run(command: SpecCommand) -> anyhow::Result<()> {
    match command {
        SpecCommand::Validate(args) => {
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr().lock();
            let mut status = EXIT_VALID;
            for file in &args.files {
                let name = file.display();
                match check(file) {
                    Checked::Valid(summary) => writeln!(stdout, "{name}: ok ({summary})")?,
                    Checked::Invalid(problems) => {
                        status = status.max(EXIT_INVALID);
                        for (pointer, message) in problems {
                            let at = if pointer.is_empty() {
                                "(document)"
                            } else {
                                pointer.as_str()
                            };
                            writeln!(stdout, "{name}: {at}: {message}")?;
                        }
                    }
                    Checked::Unreadable(why) => {
                        status = EXIT_UNREADABLE;
                        writeln!(stderr, "{name}: cannot read: {why}")?;
                    }
                }
            }
            stdout.flush()?;
            stderr.flush()?;
            if status != EXIT_VALID {
                std::process::exit(status);
            }
            Ok(())
        }
    }
}

/// Validates one file with [`ExperimentSpec::parse_str`], the parser behind the API.
pub fn check(path: &Path) -> Checked {
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return Checked::Unreadable("the file is not UTF-8 text".to_string()),
        },
        Err(e) => return Checked::Unreadable(e.to_string()),
    };
    match ExperimentSpec::parse_str(&text) {
        Ok(spec) => Checked::Valid(format!(
            "{}: {} arms, {} metrics, {} allocation",
            spec.key(),
            spec.arms().len(),
            spec.metrics().len(),
            spec.allocation().policy()
        )),
        Err(errors) => Checked::Invalid(
            errors
                .problems
                .into_iter()
                .map(|p| (p.pointer, p.message))
                .collect(),
        ),
    }
}
