//! Connection options shared by every subcommand that talks to a server.

use liftlab_lab::client::{Client, DEFAULT_SERVER};

/// The server to talk to and the key to use.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Base URL of the liftlab server.
    #[arg(long, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API key (made by `liftlab keys new`); not needed for an open loopback server.
    #[arg(
        long,
        value_name = "API_KEY",
        env = "LIFTLAB_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

impl ServerArgs {
    /// A client for these options.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::new(&self.server, self.key.clone())
    }
}
