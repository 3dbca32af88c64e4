//! liftlab-server: the actix-web JSON API, HTML result pages, auth and metrics.
